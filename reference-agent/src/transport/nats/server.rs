//! The suite's own `nats-server` with JetStream (BIND V-B; PROFILE G-06): when no broker URL
//! is given, the harness and the tests start one on a free loopback port.
//!
//! Blocking (std::process): starting waits up to [`NatsServerOptions::startup_timeout`]
//! for the server to answer with its `INFO` line; call from `spawn_blocking` in a busy
//! runtime. The child is killed on drop.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming the `nats-server` binary.
pub const BINARY_ENV: &str = "MTP_NATS_SERVER";
/// Environment variable that lets tests skip when no `nats-server` is installed.
pub const SKIP_ENV: &str = "MTP_SKIP_NATS";
/// How to install the broker on the suite's Debian base image.
pub const INSTALL_HINT: &str =
    "apt-get install -y nats-server (or set MTP_NATS_SERVER to the binary)";
/// The log file written into the store directory.
pub const LOG_FILE: &str = "nats-server.log";

/// Fallback locations searched after `$PATH`.
const FALLBACK_PATHS: [&str; 3] = [
    "/usr/sbin/nats-server",
    "/usr/local/bin/nats-server",
    "/usr/bin/nats-server",
];
/// Attempts with a fresh port when another process takes the chosen one first.
const PORT_ATTEMPTS: usize = 5;

/// Why the broker could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("nats-server not found (searched {searched:?}); install it: {INSTALL_HINT}")]
    NotInstalled { searched: Vec<PathBuf> },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nats-server exited during start-up ({status}); log tail:\n{log_tail}")]
    Exited {
        status: ExitStatus,
        log_tail: String,
    },
    #[error("nats-server on port {port} not ready after {waited:?}; log tail:\n{log_tail}")]
    StartTimeout {
        port: u16,
        waited: Duration,
        log_tail: String,
    },
    #[error("nats-server on port {port} answered without JetStream enabled")]
    NoJetStream { port: u16 },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServerError {
    let what = what.into();
    move |source| ServerError::Io { what, source }
}

/// How to start the broker.
#[derive(Clone, Debug)]
pub struct NatsServerOptions {
    /// The binary; default: `$MTP_NATS_SERVER`, else `nats-server` on `$PATH`, else
    /// `/usr/sbin/nats-server`.
    pub binary: Option<PathBuf>,
    /// JetStream store directory (kept, for persistence across runs); default: a
    /// temporary directory removed on drop.
    pub store_dir: Option<PathBuf>,
    /// Loopback port; default: a free one.
    pub port: Option<u16>,
    /// Bound on waiting for the server to accept connections.
    pub startup_timeout: Duration,
    /// Bound on the graceful stop before the child is killed.
    pub stop_timeout: Duration,
    /// Further command-line arguments.
    pub extra_args: Vec<String>,
}

impl Default for NatsServerOptions {
    fn default() -> Self {
        NatsServerOptions {
            binary: None,
            store_dir: None,
            port: None,
            startup_timeout: Duration::from_secs(10),
            stop_timeout: Duration::from_secs(5),
            extra_args: Vec::new(),
        }
    }
}

/// A running `nats-server -a 127.0.0.1 -p <port> -js -sd <dir>` owned by this process.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store_dir: PathBuf,
    options: NatsServerOptions,
    child: Option<Child>,
    version: Option<String>,
    /// Dropped after the child is killed (field order and [`Drop`]).
    _tempdir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// `true` when `MTP_SKIP_NATS=1`: tests then skip instead of failing without a broker.
    pub fn skip_requested() -> bool {
        std::env::var(SKIP_ENV).is_ok_and(|v| v == "1")
    }

    /// Finds the binary: `$MTP_NATS_SERVER`, else `nats-server` on `$PATH`, else the
    /// Debian locations.
    pub fn find_binary() -> Result<PathBuf, ServerError> {
        if let Some(p) = std::env::var_os(BINARY_ENV).filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            return if p.is_file() {
                Ok(p)
            } else {
                Err(ServerError::NotInstalled { searched: vec![p] })
            };
        }
        let mut searched = Vec::new();
        let path_dirs = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        for dir in path_dirs {
            let p = dir.join("nats-server");
            if p.is_file() {
                return Ok(p);
            }
            searched.push(p);
        }
        for p in FALLBACK_PATHS.map(PathBuf::from) {
            if p.is_file() {
                return Ok(p);
            }
            searched.push(p);
        }
        Err(ServerError::NotInstalled { searched })
    }

    /// Starts the broker and waits until it answers with a JetStream-enabled `INFO`.
    pub fn start(options: NatsServerOptions) -> Result<NatsServer, ServerError> {
        let binary = match &options.binary {
            Some(b) if b.is_file() => b.clone(),
            Some(b) => {
                return Err(ServerError::NotInstalled {
                    searched: vec![b.clone()],
                });
            }
            None => Self::find_binary()?,
        };
        let (store_dir, tempdir) = match &options.store_dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(io(format!("create {}", d.display())))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("mtp-nats-")
                    .tempdir()
                    .map_err(io("create a temporary store directory"))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let version = Command::new(&binary)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty());
        let mut server = NatsServer {
            binary,
            port: 0,
            store_dir,
            options,
            child: None,
            version,
            _tempdir: tempdir,
        };
        let attempts = if server.options.port.is_some() {
            1
        } else {
            PORT_ATTEMPTS
        };
        let mut last = None;
        for _ in 0..attempts {
            let port = match server.options.port {
                Some(p) => p,
                None => free_port()?,
            };
            match server.spawn(port) {
                Ok(()) => return Ok(server),
                // Another process took the port between probe and bind: try another one.
                Err(e @ ServerError::Exited { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(ServerError::NotInstalled { searched: vec![] }))
    }

    fn spawn(&mut self, port: u16) -> Result<(), ServerError> {
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io(format!("open {}", log_path.display())))?;
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log_err = log.try_clone().map_err(io("clone the log handle"))?;
        let mut child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(&self.store_dir)
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(io(format!("spawn {}", self.binary.display())))?;
        let started = Instant::now();
        let timeout = self.options.startup_timeout;
        loop {
            if let Some(status) = child.try_wait().map_err(io("wait for nats-server"))? {
                return Err(ServerError::Exited {
                    status,
                    log_tail: log_tail(&log_path, log_start),
                });
            }
            match probe(port) {
                Some(true) => break,
                Some(false) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ServerError::NoJetStream { port });
                }
                None => {}
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ServerError::StartTimeout {
                    port,
                    waited: timeout,
                    log_tail: log_tail(&log_path, log_start),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.port = port;
        self.child = Some(child);
        tracing::info!(port, store = %self.store_dir.display(), "nats-server started");
        Ok(())
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The captured stdout/stderr of every run, in the store directory.
    pub fn log_path(&self) -> PathBuf {
        self.store_dir.join(LOG_FILE)
    }

    /// `nats-server --version` output, e.g. `nats-server: v2.9.10`.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops gracefully (SIGTERM: JetStream flushes its store), killing the child after
    /// [`NatsServerOptions::stop_timeout`]. Idempotent.
    pub fn stop(&mut self) -> Result<(), ServerError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child
            .try_wait()
            .map_err(io("wait for nats-server"))?
            .is_some()
        {
            return Ok(());
        }
        let pid = child.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + self.options.stop_timeout;
        while signalled && Instant::now() < deadline {
            if child
                .try_wait()
                .map_err(io("wait for nats-server"))?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!(pid, "nats-server did not stop gracefully; killing it");
        let _ = child.kill();
        child.wait().map_err(io("wait for nats-server"))?;
        Ok(())
    }

    /// Stops and starts again on the same port with the same store directory.
    pub fn restart(&mut self) -> Result<(), ServerError> {
        self.stop()?;
        let port = self.port;
        // The port was just released; give a racing process no more than a retry.
        let mut result = self.spawn(port);
        if let Err(ServerError::Exited { .. }) = &result {
            std::thread::sleep(Duration::from_millis(200));
            result = self.spawn(port);
        }
        result
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Binds 127.0.0.1:0, reads the port, releases it.
fn free_port() -> Result<u16, ServerError> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io("bind 127.0.0.1:0"))?;
    let port = l.local_addr().map_err(io("read the bound port"))?.port();
    Ok(port)
}

/// `None` while not accepting; `Some(jetstream)` once the `INFO` line arrived.
fn probe(port: u16) -> Option<bool> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let stream = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let mut line = String::new();
    BufReader::new(stream.take(64 * 1024))
        .read_line(&mut line)
        .ok()?;
    let json = line.strip_prefix("INFO ")?;
    let info: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    Some(info.get("jetstream").and_then(serde_json::Value::as_bool) == Some(true))
}

/// The last ≤ 2 KiB written to the log since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(2048));
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
