//! An in-memory [`Kernel`] for unit tests: models names, inodes (so hard links share
//! metadata), symlinks that `open_dir` refuses to follow, a 022 umask, and logs every
//! mutating call so tests can check ordering.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::rc::Rc;

use crate::archive::Timestamp;
use crate::kernel::{Creator, Kernel, NodeKind, Target};

#[derive(Debug, Clone)]
pub struct Inode {
    pub ino: u64,
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<Timestamp>,
    pub xattrs: BTreeMap<OsString, Vec<u8>>,
    pub content: Vec<u8>,
    pub link: OsString,
    pub dev: (u32, u32),
}

type Shared = Rc<RefCell<Inode>>;

#[derive(Default)]
struct State {
    names: BTreeMap<Vec<u8>, Shared>,
    ops: Vec<String>,
    next_ino: u64,
}

#[derive(Clone)]
pub struct FakeKernel {
    state: Rc<RefCell<State>>,
}

pub struct FakeDir {
    path: Vec<u8>,
    inode: Shared,
}

pub struct FakeFile {
    inode: Shared,
}

impl Write for FakeFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inode.borrow_mut().content.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn join(parent: &[u8], name: &OsStr) -> Vec<u8> {
    let mut p = parent.to_vec();
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(name.as_bytes());
    p
}

const UMASK: u32 = 0o022;

impl FakeKernel {
    pub fn new() -> Self {
        let k = FakeKernel {
            state: Rc::new(RefCell::new(State::default())),
        };
        k.insert(b"", NodeKind::Directory, 0o755);
        k
    }

    fn insert(&self, path: &[u8], kind: NodeKind, mode: u32) -> Shared {
        // Like the kernel: in a setgid directory a new node takes the directory's group, and
        // a new directory the setgid bit too.
        let parent = path
            .iter()
            .rposition(|&b| b == b'/')
            .map_or(&path[..0], |i| &path[..i]);
        let inherited = self.lookup(parent).and_then(|d| {
            let d = d.borrow();
            (d.kind == NodeKind::Directory && d.mode & 0o2000 != 0).then_some(d.gid)
        });
        let mode = match (inherited, kind) {
            (Some(_), NodeKind::Directory) => mode | 0o2000,
            _ => mode,
        };
        let mut st = self.state.borrow_mut();
        st.next_ino += 1;
        let inode = Rc::new(RefCell::new(Inode {
            ino: st.next_ino,
            kind,
            mode,
            uid: 0,
            gid: inherited.unwrap_or(0),
            mtime: None,
            xattrs: BTreeMap::new(),
            content: Vec::new(),
            link: OsString::new(),
            dev: (0, 0),
        }));
        st.names.insert(path.to_vec(), inode.clone());
        inode
    }

    fn log(&self, op: String) {
        self.state.borrow_mut().ops.push(op);
    }

    fn lookup(&self, path: &[u8]) -> Option<Shared> {
        self.state.borrow().names.get(path).cloned()
    }

    /// A directory handle is only good while its inode is still at that name.
    fn check_dir(&self, d: &FakeDir) -> io::Result<()> {
        match self.lookup(&d.path) {
            Some(i) if Rc::ptr_eq(&i, &d.inode) => Ok(()),
            _ => Err(err(libc::ENOENT)),
        }
    }

    fn child(&self, parent: &FakeDir, name: &OsStr) -> io::Result<(Vec<u8>, Option<Shared>)> {
        self.check_dir(parent)?;
        let p = join(&parent.path, name);
        let node = self.lookup(&p);
        Ok((p, node))
    }

    fn target(&self, t: Target<'_, Self>) -> io::Result<(String, Shared)> {
        match t {
            Target::Dir(d) => {
                self.check_dir(d)?;
                Ok((
                    String::from_utf8_lossy(&d.path).into_owned(),
                    d.inode.clone(),
                ))
            }
            Target::File(f) => Ok((format!("ino{}", f.inode.borrow().ino), f.inode.clone())),
            Target::Node { parent, name, .. } => {
                let (p, node) = self.child(parent, name)?;
                Ok((
                    String::from_utf8_lossy(&p).into_owned(),
                    node.ok_or_else(|| err(libc::ENOENT))?,
                ))
            }
        }
    }

    // ---- test helpers ----

    pub fn add_dir(&self, path: &str) {
        self.insert(path.as_bytes(), NodeKind::Directory, 0o755);
    }

    pub fn add_file(&self, path: &str, content: &[u8]) {
        self.insert(path.as_bytes(), NodeKind::Regular, 0o644)
            .borrow_mut()
            .content = content.to_vec();
    }

    pub fn add_symlink(&self, path: &str, target: &str) {
        self.insert(path.as_bytes(), NodeKind::Symlink, 0o777)
            .borrow_mut()
            .link = target.into();
    }

    pub fn inode(&self, path: &str) -> Option<Inode> {
        self.lookup(path.as_bytes()).map(|i| i.borrow().clone())
    }

    pub fn kind(&self, path: &str) -> Option<NodeKind> {
        self.inode(path).map(|i| i.kind)
    }

    pub fn mode(&self, path: &str) -> Option<u32> {
        self.inode(path).map(|i| i.mode)
    }

    pub fn paths(&self) -> Vec<String> {
        self.state
            .borrow()
            .names
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    pub fn ops(&self) -> Vec<String> {
        self.state.borrow().ops.clone()
    }

    pub fn count_ops(&self, prefix: &str) -> usize {
        self.state
            .borrow()
            .ops
            .iter()
            .filter(|o| o.starts_with(prefix))
            .count()
    }
}

impl Kernel for FakeKernel {
    type Dir = FakeDir;
    type File = FakeFile;

    fn open_root(&self, _path: &Path) -> io::Result<FakeDir> {
        let inode = self.lookup(b"").ok_or_else(|| err(libc::ENOENT))?;
        Ok(FakeDir {
            path: Vec::new(),
            inode,
        })
    }

    fn open_dir(&self, parent: &FakeDir, name: &OsStr) -> io::Result<FakeDir> {
        let (p, node) = self.child(parent, name)?;
        self.log(format!("open_dir {}", String::from_utf8_lossy(&p)));
        let node = node.ok_or_else(|| err(libc::ENOENT))?;
        let kind = node.borrow().kind;
        match kind {
            NodeKind::Directory => Ok(FakeDir {
                path: p,
                inode: node,
            }),
            NodeKind::Symlink => Err(err(libc::ELOOP)),
            _ => Err(err(libc::ENOTDIR)),
        }
    }

    fn node_kind(&self, parent: &FakeDir, name: &OsStr) -> io::Result<Option<NodeKind>> {
        let (_, node) = self.child(parent, name)?;
        Ok(node.map(|n| n.borrow().kind))
    }

    fn make_dir(&self, parent: &FakeDir, name: &OsStr, mode: u32) -> io::Result<()> {
        let (p, node) = self.child(parent, name)?;
        if node.is_some() {
            return Err(err(libc::EEXIST));
        }
        self.log(format!("mkdir {}", String::from_utf8_lossy(&p)));
        self.insert(&p, NodeKind::Directory, mode & !UMASK);
        Ok(())
    }

    fn create_file(&self, parent: &FakeDir, name: &OsStr, mode: u32) -> io::Result<FakeFile> {
        let (p, node) = self.child(parent, name)?;
        if node.is_some() {
            return Err(err(libc::EEXIST));
        }
        self.log(format!("create {}", String::from_utf8_lossy(&p)));
        Ok(FakeFile {
            inode: self.insert(&p, NodeKind::Regular, mode & !UMASK),
        })
    }

    fn creator(&self) -> Creator {
        Creator {
            uid: 0,
            gid: 0,
            umask: UMASK,
        }
    }

    fn symlink(&self, parent: &FakeDir, name: &OsStr, target: &OsStr) -> io::Result<()> {
        let (p, node) = self.child(parent, name)?;
        if node.is_some() {
            return Err(err(libc::EEXIST));
        }
        self.log(format!("symlink {}", String::from_utf8_lossy(&p)));
        self.insert(&p, NodeKind::Symlink, 0o777).borrow_mut().link = target.to_owned();
        Ok(())
    }

    fn hard_link(
        &self,
        from_parent: &FakeDir,
        from_name: &OsStr,
        parent: &FakeDir,
        name: &OsStr,
    ) -> io::Result<()> {
        let (_, src) = self.child(from_parent, from_name)?;
        let src = src.ok_or_else(|| err(libc::ENOENT))?;
        if src.borrow().kind == NodeKind::Directory {
            return Err(err(libc::EPERM));
        }
        let (p, node) = self.child(parent, name)?;
        if node.is_some() {
            return Err(err(libc::EEXIST));
        }
        self.log(format!("link {}", String::from_utf8_lossy(&p)));
        self.state.borrow_mut().names.insert(p, src);
        Ok(())
    }

    fn make_node(
        &self,
        parent: &FakeDir,
        name: &OsStr,
        kind: NodeKind,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let (p, node) = self.child(parent, name)?;
        if node.is_some() {
            return Err(err(libc::EEXIST));
        }
        self.log(format!("mknod {}", String::from_utf8_lossy(&p)));
        self.insert(&p, kind, 0).borrow_mut().dev = (major, minor);
        Ok(())
    }

    fn remove(&self, parent: &FakeDir, name: &OsStr, dir: bool) -> io::Result<()> {
        let (p, node) = self.child(parent, name)?;
        let node = node.ok_or_else(|| err(libc::ENOENT))?;
        let is_dir = node.borrow().kind == NodeKind::Directory;
        if dir != is_dir {
            return Err(err(if dir { libc::ENOTDIR } else { libc::EISDIR }));
        }
        let mut prefix = p.clone();
        prefix.push(b'/');
        let mut st = self.state.borrow_mut();
        if dir && st.names.keys().any(|k| k.starts_with(&prefix)) {
            return Err(err(libc::ENOTEMPTY));
        }
        st.names.remove(&p);
        st.ops
            .push(format!("remove {}", String::from_utf8_lossy(&p)));
        Ok(())
    }

    fn list_dir(&self, dir: &FakeDir) -> io::Result<Vec<(OsString, NodeKind)>> {
        self.check_dir(dir)?;
        let mut prefix = dir.path.clone();
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        let st = self.state.borrow();
        Ok(st
            .names
            .iter()
            .filter(|(k, _)| {
                k.len() > prefix.len()
                    && k.starts_with(&prefix)
                    && !k[prefix.len()..].contains(&b'/')
            })
            .map(|(k, v)| {
                (
                    OsStr::from_bytes(&k[prefix.len()..]).to_owned(),
                    v.borrow().kind,
                )
            })
            .collect())
    }

    fn set_owner(&self, t: Target<'_, Self>, uid: u32, gid: u32) -> io::Result<()> {
        let (name, inode) = self.target(t)?;
        self.log(format!("chown {name} {uid}:{gid}"));
        let mut i = inode.borrow_mut();
        i.uid = uid;
        i.gid = gid;
        // Like the kernel: chown drops setuid/setgid and file capabilities.
        if i.kind != NodeKind::Directory {
            i.mode &= !0o6000;
            i.xattrs.remove(OsStr::new("security.capability"));
        }
        Ok(())
    }

    fn set_mode(&self, t: Target<'_, Self>, mode: u32) -> io::Result<()> {
        if let Target::Node {
            kind: NodeKind::Symlink,
            ..
        } = t
        {
            return Ok(());
        }
        let (name, inode) = self.target(t)?;
        self.log(format!("chmod {name} {mode:o}"));
        inode.borrow_mut().mode = mode;
        Ok(())
    }

    fn set_xattr(&self, t: Target<'_, Self>, name: &OsStr, value: &[u8]) -> io::Result<()> {
        let (path, inode) = self.target(t)?;
        self.log(format!("xattr {path} {}", name.to_string_lossy()));
        inode
            .borrow_mut()
            .xattrs
            .insert(name.to_owned(), value.to_vec());
        Ok(())
    }

    fn set_mtime(&self, t: Target<'_, Self>, time: Timestamp) -> io::Result<()> {
        let (name, inode) = self.target(t)?;
        self.log(format!("mtime {name}"));
        inode.borrow_mut().mtime = Some(time);
        Ok(())
    }

    fn sync_fs(&self, _dir: &FakeDir) -> io::Result<()> {
        self.log("syncfs".into());
        Ok(())
    }

    fn start_writeback(&self, _file: &FakeFile, _offset: u64, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

impl FakeKernel {
    /// Error class, for asserting on how a failure would surface.
    pub fn class_of<'a>(&self, e: &'a crate::unpack::UnpackError) -> crate::error::ErrorClass<'a> {
        e.class()
    }
}
