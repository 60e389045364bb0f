//! Secrets at rest: the files and folders a node keeps to itself.
//!
//! A node's secrets (the cluster key, the TLS private key, the replication password files) and
//! its metadata (the controller's users and password hashes, a data node's rows) must not be
//! open to the group or to others. Each server binary checks them once at start, before it
//! opens anything but its config files (`config::NodeSecrets::check_private`,
//! which both configs implement), and refuses
//! to start with one line naming the path and the `chmod` that fixes it. Everything the
//! process creates afterwards is private too: the binaries set the umask to `077` first thing
//! (`process::private_umask`), and the top folders are made `0700` explicitly
//! ([`create_private_dir`]), so that a library caller that keeps its own umask gets them too.
//!
//! **Invariant:** a node never starts with a secret or its metadata folder readable by others.

use std::path::{Path, PathBuf};

/// The permission bits a private file or folder may not have: any access by the group or by
/// others.
pub const OPEN_TO_OTHERS: u32 = 0o077;

/// One path that must be private, and what it is (for the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivatePath {
    /// Where it is.
    pub path: PathBuf,
    /// What it is, as the message says it: "the cluster key file", "the metadata folder".
    pub what: &'static str,
}

impl PrivatePath {
    pub fn new(path: &Path, what: &'static str) -> PrivatePath {
        PrivatePath {
            path: path.to_path_buf(),
            what,
        }
    }
}

/// Checks that `path` is not open to the group or to others (`mode & 0o077 == 0`, following
/// symbolic links to what they name). A path that does not exist yet passes: a folder is then
/// created `0700` at start, and a missing file is reported by whatever reads it. The error is
/// one sentence naming `what`, the path, its mode and the `chmod` that fixes it, e.g.
/// `the cluster key file /x/cluster.key is readable by others (mode 0644): run chmod 600 /x/cluster.key`.
pub fn check_private(path: &Path, what: &str) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(format!(
                "cannot check the permissions of {what} {}: {e}",
                path.display()
            ))
        }
    };
    let mode = mode_of(&meta);
    let open = mode & OPEN_TO_OTHERS;
    if open == 0 {
        return Ok(());
    }
    let how = if open & 0o044 != 0 {
        "readable"
    } else if open & 0o022 != 0 {
        "writable"
    } else {
        "accessible"
    };
    let fix = if meta.is_dir() { "700" } else { "600" };
    Err(format!(
        "{what} {} is {how} by others (mode {:04o}): run chmod {fix} {}",
        path.display(),
        mode & 0o7777,
        shell_word(path)
    ))
}

#[cfg(unix)]
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode()
}

#[cfg(not(unix))]
fn mode_of(_meta: &std::fs::Metadata) -> u32 {
    // No Unix permission bits to check.
    0o600
}

/// `path` as one word a POSIX shell reads back unchanged: as is when it holds only safe
/// characters, else in single quotes.
fn shell_word(path: &Path) -> String {
    let s = path.display().to_string();
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=%".contains(c));
    if safe {
        s
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// [`check_private`] on each path in order; the first failure.
pub fn check_all(paths: &[PrivatePath]) -> Result<(), String> {
    paths
        .iter()
        .try_for_each(|p| check_private(&p.path, p.what))
}

/// Creates the folder `dir` and its missing parents, each `0700` (less the umask). An
/// existing folder is left as it is (the start check has judged it).
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Reads a password file: it must be private ([`check_private`]); its content, less one
/// trailing newline (`\n` or `\r\n`), is the password, which may not be empty. The error says
/// what is wrong with the file and how to fix it.
pub fn read_password_file(path: &Path) -> Result<String, String> {
    check_private(path, "the password file")?;
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "the password file {} does not exist: write the password in it (one line) and run chmod 600 {}",
            path.display(),
            shell_word(path)
        ),
        std::io::ErrorKind::InvalidData => format!(
            "the password file {} is not UTF-8 text",
            path.display()
        ),
        _ => format!("cannot read the password file {}: {e}", path.display()),
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(format!(
            "the password file {} is empty: write the password in it (one line)",
            path.display()
        ));
    }
    Ok(password.to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn a_file_or_folder_open_to_others_is_refused_with_the_chmod_that_fixes_it() {
        let d = tempfile::tempdir().expect("tmp");
        let key = d.path().join("cluster.key");
        std::fs::write(&key, b"0123456789abcdef").expect("write");
        chmod(&key, 0o644);
        let e = check_private(&key, "the cluster key file").expect_err("0644");
        assert_eq!(
            e,
            format!(
                "the cluster key file {0} is readable by others (mode 0644): run chmod 600 {0}",
                key.display()
            )
        );
        chmod(&key, 0o620);
        let e = check_private(&key, "the cluster key file").expect_err("0620");
        assert!(e.contains("is writable by others (mode 0620)"), "{e}");
        for ok in [0o600, 0o400, 0o700] {
            chmod(&key, ok);
            check_private(&key, "the cluster key file").expect("private");
        }
        let meta = d.path().join("meta");
        std::fs::create_dir(&meta).expect("mkdir");
        chmod(&meta, 0o755);
        let e = check_private(&meta, "the metadata folder").expect_err("0755");
        assert!(
            e.ends_with(&format!("(mode 0755): run chmod 700 {}", meta.display())),
            "{e}"
        );
        chmod(&meta, 0o711);
        let e = check_private(&meta, "the metadata folder").expect_err("0711");
        assert!(e.contains("is accessible by others"), "{e}");
        chmod(&meta, 0o700);
        check_private(&meta, "the metadata folder").expect("private");
    }

    #[test]
    fn what_does_not_exist_yet_passes() {
        let d = tempfile::tempdir().expect("tmp");
        check_private(&d.path().join("data/controller1"), "the home folder").expect("absent");
    }

    #[test]
    fn the_fix_quotes_a_path_the_shell_would_split() {
        assert_eq!(shell_word(Path::new("/a/b-c_d.key")), "/a/b-c_d.key");
        assert_eq!(shell_word(Path::new("/my keys/a")), "'/my keys/a'");
        assert_eq!(shell_word(Path::new("/it's")), r"'/it'\''s'");
    }

    #[test]
    fn created_folders_are_private() {
        let d = tempfile::tempdir().expect("tmp");
        let home = d.path().join("data").join("dnode1");
        create_private_dir(&home).expect("create");
        for dir in [d.path().join("data"), home.clone()] {
            let mode = std::fs::metadata(&dir).expect("meta").permissions().mode();
            assert_eq!(mode & OPEN_TO_OTHERS, 0, "{} is {mode:o}", dir.display());
        }
        create_private_dir(&home).expect("an existing folder is fine");
    }

    #[test]
    fn a_password_file_loses_one_trailing_newline_and_may_not_be_empty_or_open() {
        let d = tempfile::tempdir().expect("tmp");
        let f = d.path().join("pw");
        let read = |content: &str| {
            std::fs::write(&f, content).expect("write");
            chmod(&f, 0o600);
            read_password_file(&f)
        };
        assert_eq!(read("s3cret\n").as_deref(), Ok("s3cret"));
        assert_eq!(read("s3cret").as_deref(), Ok("s3cret"));
        assert_eq!(read("s3cret\r\n").as_deref(), Ok("s3cret"));
        assert_eq!(read("s3cret\n\n").as_deref(), Ok("s3cret\n"));
        assert_eq!(read(" sp ace \n").as_deref(), Ok(" sp ace "));
        for empty in ["", "\n", "\r\n"] {
            let e = read(empty).expect_err("empty");
            assert!(e.contains("is empty"), "{e}");
        }
        std::fs::write(&f, "s3cret\n").expect("write");
        chmod(&f, 0o640);
        let e = read_password_file(&f).expect_err("0640");
        assert!(e.contains("readable by others (mode 0640)"), "{e}");
        let e = read_password_file(&d.path().join("nope")).expect_err("missing");
        assert!(e.contains("does not exist"), "{e}");
    }
}
