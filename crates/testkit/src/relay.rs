//! A TCP relay in front of a service (PostgreSQL, MariaDB, Redis) that a test can pull
//! the plug on, to stand for that server going away: new connections are refused and the
//! open ones cut. [`Relay::cut`] and [`Relay::restore`] stand for a server that stops and
//! comes back on the same address.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Relay {
    port: u16,
    accept: tokio::task::JoinHandle<()>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    down: Arc<AtomicBool>,
}

impl Relay {
    /// Relays to the host and port of `url` (the scheme's default port when it has none).
    pub async fn start(url: &str) -> Relay {
        let url = url::Url::parse(url).expect("a service URL");
        let default = match url.scheme() {
            "postgres" | "postgresql" => 5432,
            "redis" | "rediss" => 6379,
            _ => 3306,
        };
        let upstream = format!(
            "{}:{}",
            url.host_str().unwrap_or("127.0.0.1"),
            url.port().unwrap_or(default)
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let port = listener.local_addr().expect("bound").port();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let down = Arc::new(AtomicBool::new(false));
        let accept = {
            let (conns, down) = (conns.clone(), down.clone());
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if down.load(Ordering::SeqCst) {
                        // A server that is down: the connection ends at once.
                        drop(client);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(task.abort_handle());
                }
            })
        };
        Relay {
            port,
            accept,
            conns,
            down,
        }
    }

    /// The server stops: every open connection is cut and new ones end at once, until
    /// [`Relay::restore`].
    pub async fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            conn.abort();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    /// The server is back on the same address.
    pub fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    /// `url` with its host and port replaced by the relay's.
    pub fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("a service URL");
        url.set_host(Some("127.0.0.1")).expect("a host");
        url.set_port(Some(self.port)).expect("a port");
        url.to_string()
    }

    /// Stops listening (new connections are refused) and cuts every open connection.
    pub async fn kill(self) {
        self.accept.abort();
        let _ = self.accept.await;
        for conn in self.conns.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            conn.abort();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
