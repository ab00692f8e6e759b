//! The floor of the HTTP stack on this machine: a bare axum server on the same tokio
//! runtime kind as Tenantry's, answering `GET /` with a 5-byte body and nothing else (no
//! layers, no state), with the same allocator as the `tenantry` binary. Load scripts measure it in the same run as the real endpoints, so a
//! figure can be read against what any axum answer costs here.
//!
//! `hello_floor <listen address>`

use axum::Router;
use axum::routing::get;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18180".into());
    let listener = tokio::net::TcpListener::bind(&listen).await.unwrap();
    let app = Router::new().route("/", get(|| async { "hello" }));
    axum::serve(listener, app).await.unwrap();
}
