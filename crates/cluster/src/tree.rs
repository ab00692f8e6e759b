//! The control-plane tree as one byte string: what a Raft snapshot carries.
//!
//! Only the replicated folders (`tenants/`, `system/`) are packed; node-local files under
//! FS_ROOT (SQLite tenant databases, the Raft store, a development key) never are. The
//! format is a magic header and then records of (kind, path, contents) with explicit
//! lengths, read in one linear pass that refuses any path leaving the tree.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The top-level folders of FS_ROOT that make up the replicated control plane.
pub const REPLICATED: [&str; 2] = ["tenants", "system"];

const MAGIC: &[u8; 8] = b"TNTRYCP1";
const DIR: u8 = 1;
const FILE: u8 = 2;
/// A path inside the tree is short; anything longer is not ours.
const MAX_PATH: usize = 4096;

/// Packs the replicated folders under `root`. Temporary files of an interrupted atomic
/// write (`.name.tmp-…`) are left out.
pub fn pack(root: &Path) -> io::Result<Vec<u8>> {
    let mut out = MAGIC.to_vec();
    for top in REPLICATED {
        let dir = root.join(top);
        if dir.is_dir() {
            pack_dir(root, &dir, &mut out)?;
        }
    }
    Ok(out)
}

fn pack_dir(root: &Path, dir: &Path, out: &mut Vec<u8>) -> io::Result<()> {
    push_record(out, DIR, &relative(root, dir)?, None);
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            pack_dir(root, &path, out)?;
        } else if kind.is_file() {
            let bytes = fs::read(&path)?;
            push_record(out, FILE, &relative(root, &path)?, Some(&bytes));
        }
    }
    Ok(())
}

fn relative(root: &Path, path: &Path) -> io::Result<String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| io::Error::other("path outside the tree"))?;
    let parts: Vec<_> = rel
        .components()
        .map(|c| c.as_os_str().to_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| io::Error::other("a control-plane path is not UTF-8"))?;
    Ok(parts.join("/"))
}

fn push_record(out: &mut Vec<u8>, kind: u8, path: &str, bytes: Option<&[u8]>) {
    out.push(kind);
    out.extend_from_slice(&(path.len() as u32).to_be_bytes());
    out.extend_from_slice(path.as_bytes());
    if let Some(bytes) = bytes {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    }
}

/// Writes a packed tree under `dest` (which must be empty or missing), then makes it durable
/// with one `syncfs` of its filesystem (a sync per file costs tens of seconds for a large
/// control plane; the caller marks the install complete only after this). A malformed pack is refused with `InvalidData`; what was written so far is
/// left for the caller to remove.
pub fn unpack(bytes: &[u8], dest: &Path) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("snapshot: {what}"));
    let rest = bytes
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| invalid("unknown format"))?;
    fs::create_dir_all(dest)?;
    let mut reader = Reader(rest);
    while !reader.0.is_empty() {
        let kind = reader.take(1).ok_or_else(|| invalid("truncated record"))?[0];
        let len = u32::from_be_bytes(reader.array().ok_or_else(|| invalid("truncated path length"))?) as usize;
        if len == 0 || len > MAX_PATH {
            return Err(invalid("path length out of range"));
        }
        let path = reader.take(len).ok_or_else(|| invalid("truncated path"))?;
        let path = std::str::from_utf8(path).map_err(|_| invalid("path is not UTF-8"))?;
        let target = dest.join(checked_path(path).ok_or_else(|| invalid("path leaves the tree"))?);
        match kind {
            DIR => fs::create_dir_all(&target)?,
            FILE => {
                let size = u64::from_be_bytes(reader.array().ok_or_else(|| invalid("truncated file length"))?);
                let size = usize::try_from(size).map_err(|_| invalid("file too large"))?;
                let contents = reader.take(size).ok_or_else(|| invalid("truncated file"))?;
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent)?;
                }
                let mut file = fs::File::create(&target)?;
                io::Write::write_all(&mut file, contents)?;
            }
            _ => return Err(invalid("unknown record kind")),
        }
    }
    rustix::fs::syncfs(fs::File::open(dest)?)?;
    Ok(())
}

/// A relative path of plain components whose first is a replicated folder.
fn checked_path(path: &str) -> Option<PathBuf> {
    let candidate = Path::new(path);
    let mut components = candidate.components();
    match components.next() {
        Some(Component::Normal(first)) if REPLICATED.iter().any(|top| first == *top) => {}
        _ => return None,
    }
    components
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| candidate.to_owned())
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N).map(|b| b.try_into().expect("length checked"))
    }
}

/// Replaces the replicated folders under `root` with those under `staged`. Each folder
/// moves by rename; the old one is set aside first and removed last, so a crash leaves
/// either folder complete (see [`finish_interrupted_swap`]).
pub fn swap_in(root: &Path, staged: &Path, retired: &Path) -> io::Result<()> {
    if retired.exists() {
        fs::remove_dir_all(retired)?;
    }
    fs::create_dir_all(retired)?;
    for top in REPLICATED {
        let live = root.join(top);
        let new = staged.join(top);
        if live.exists() {
            fs::rename(&live, retired.join(top))?;
        }
        if new.exists() {
            fs::rename(&new, &live)?;
        } else {
            fs::create_dir_all(&live)?;
        }
    }
    tenantry_controlplane::store::sync_dir(root)?;
    fs::remove_dir_all(retired)?;
    let _ = fs::remove_dir_all(staged);
    Ok(())
}

/// After a crash in the middle of [`swap_in`]: a folder missing from `root` is brought back
/// from `staged` (if the install had finished staging) or from `retired`.
pub fn finish_interrupted_swap(root: &Path, staged: &Path, retired: &Path, staged_complete: bool) -> io::Result<()> {
    for top in REPLICATED {
        let live = root.join(top);
        if live.exists() {
            continue;
        }
        let source = if staged_complete {
            staged.join(top)
        } else {
            retired.join(top)
        };
        if source.exists() {
            fs::rename(&source, &live)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_round_trips_without_temporary_files() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("tenants/acme/clients")).unwrap();
        fs::create_dir_all(src.path().join("system/admins")).unwrap();
        fs::write(src.path().join("tenants/acme/tenant.json"), b"{\"a\":1}").unwrap();
        fs::write(src.path().join("tenants/acme/.tenant.json.tmp-1"), b"half").unwrap();
        fs::write(src.path().join("system/keys.json"), b"[]").unwrap();
        fs::write(src.path().join("dev-master-key"), b"local only").unwrap();
        let packed = pack(src.path()).unwrap();
        let dest = tempfile::tempdir().unwrap();
        unpack(&packed, dest.path()).unwrap();
        assert_eq!(
            fs::read(dest.path().join("tenants/acme/tenant.json")).unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(fs::read(dest.path().join("system/keys.json")).unwrap(), b"[]");
        assert!(dest.path().join("tenants/acme/clients").is_dir());
        assert!(dest.path().join("system/admins").is_dir());
        assert!(!dest.path().join("tenants/acme/.tenant.json.tmp-1").exists());
        assert!(!dest.path().join("dev-master-key").exists());
        assert_eq!(pack(dest.path()).unwrap(), packed, "packing is deterministic");
    }

    #[test]
    fn malformed_packs_are_refused_without_escaping_the_tree() {
        let dest = tempfile::tempdir().unwrap();
        let target = dest.path().join("t");
        let mut escape = MAGIC.to_vec();
        push_record(&mut escape, FILE, "tenants/../../evil", Some(b"x"));
        let mut outside = MAGIC.to_vec();
        push_record(&mut outside, FILE, "elsewhere/file", Some(b"x"));
        let mut absolute = MAGIC.to_vec();
        push_record(&mut absolute, DIR, "/etc", None);
        let mut truncated = MAGIC.to_vec();
        push_record(&mut truncated, FILE, "tenants/a", Some(b"abcdef"));
        truncated.truncate(truncated.len() - 2);
        let mut huge = MAGIC.to_vec();
        huge.push(FILE);
        huge.extend_from_slice(&9u32.to_be_bytes());
        huge.extend_from_slice(b"tenants/a");
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        for bad in [escape, outside, absolute, truncated, huge, b"NOTMAGIC".to_vec(), vec![]] {
            let err = unpack(&bad, &target).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        }
        assert!(!dest.path().join("evil").exists());
    }

    #[test]
    fn a_swap_replaces_the_replicated_folders_only() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("tenants/old")).unwrap();
        fs::create_dir_all(root.path().join("system")).unwrap();
        fs::create_dir_all(root.path().join("tenant-db")).unwrap();
        let staged = root.path().join("raft/restore");
        fs::create_dir_all(staged.join("tenants/new")).unwrap();
        fs::create_dir_all(staged.join("system")).unwrap();
        swap_in(root.path(), &staged, &root.path().join("raft/retired")).unwrap();
        assert!(root.path().join("tenants/new").is_dir());
        assert!(!root.path().join("tenants/old").exists());
        assert!(root.path().join("tenant-db").is_dir());
        assert!(!root.path().join("raft/retired").exists());
    }
}
