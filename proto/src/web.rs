//! HTTP on every node's own port: Prometheus metrics (`GET /metrics`) and, on a controller, a
//! status page (`GET /`). A connection whose first bytes are a request line (`GET `, `HEAD`) is
//! told apart from xrepl's frames and DolphinDB's API by its first byte (a frame of ours would
//! declare over 1 GB), as DolphinDB serves its web interface on the node's port; it is then
//! served by `hyper`, and the node answers each request with a [`WebResponse`].
//!
//! Every request must carry HTTP Basic credentials of a user of the cluster; the node says who
//! may see what. Basic credentials travel in clear, so a cluster that takes TLS connections only
//! (`enableTLS=true`) refuses plain HTTP (see `rpc::server`).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio::sync::watch;

use crate::rpc::BoxedIo;

/// How long a client may take to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// The first bytes of the HTTP requests a node serves.
pub fn is_http_start(first: u8) -> bool {
    matches!(first, b'G' | b'H')
}

/// One HTTP request, as a node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// HTTP Basic credentials, user and password (`None`: none, or not readable).
    pub credentials: Option<(String, String)>,
    pub peer: SocketAddr,
}

/// A node's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Ask the client for credentials (`WWW-Authenticate: Basic`).
    pub challenge: bool,
}

/// Prometheus' text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";
pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";

impl WebResponse {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> WebResponse {
        WebResponse {
            status: 200,
            content_type,
            body: body.into(),
            challenge: false,
        }
    }

    /// A plain-text answer with `status`.
    pub fn text(status: u16, message: impl Into<String>) -> WebResponse {
        let mut body: String = message.into();
        body.push('\n');
        WebResponse {
            status,
            content_type: TEXT,
            body: body.into_bytes(),
            challenge: false,
        }
    }

    /// 401: log in (the browser asks for a user and password).
    pub fn unauthorized(message: impl Into<String>) -> WebResponse {
        WebResponse {
            challenge: true,
            ..WebResponse::text(401, message)
        }
    }

    pub fn not_found(path: &str) -> WebResponse {
        WebResponse::text(
            404,
            format!("nothing at {path}: this node serves /metrics (and a controller /)"),
        )
    }
}

/// The user and password of a request the nodes serve (`GET` or `HEAD`, with HTTP Basic
/// credentials), or the answer that refuses it.
pub fn credentials(req: &WebRequest) -> Result<(&str, &str), WebResponse> {
    if req.method != "GET" && req.method != "HEAD" {
        return Err(WebResponse::text(
            405,
            format!("{} is not served here; use GET", req.method),
        ));
    }
    match &req.credentials {
        Some((user, password)) => Ok((user, password)),
        None => Err(WebResponse::unauthorized(
            "log in with a user of this cluster (HTTP Basic authentication)",
        )),
    }
}

/// Logins checked lately (a hash of user and password, and when), so that scrapes do not make
/// a login each: a node that checks passwords through another trusts a good answer a while.
pub struct LoginCache {
    kept: std::sync::Mutex<Vec<([u8; 32], std::time::Instant)>>,
    for_: Duration,
}

impl LoginCache {
    pub fn new(for_: Duration) -> LoginCache {
        LoginCache {
            kept: std::sync::Mutex::new(Vec::new()),
            for_,
        }
    }

    fn key(user: &str, password: &str) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether this user and password were found good within the time kept.
    pub fn knows(&self, user: &str, password: &str) -> bool {
        let key = Self::key(user, password);
        let mut l = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        l.retain(|(_, at)| at.elapsed() < self.for_);
        l.iter().any(|(k, _)| *k == key)
    }

    /// This user and password were found good now (at most 64 are kept).
    pub fn remember(&self, user: &str, password: &str) {
        let mut l = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        if l.len() < 64 {
            l.push((Self::key(user, password), std::time::Instant::now()));
        }
    }
}

/// HTTP Basic credentials from an `Authorization` header's value.
pub fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Serves HTTP/1.1 on `io` until the client closes it or `shutdown`: each request is answered
/// by `answer`.
pub async fn serve<F, Fut>(
    io: BoxedIo,
    peer: SocketAddr,
    answer: F,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), String>
where
    F: Fn(WebRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = WebResponse> + Send + 'static,
{
    let answer = Arc::new(answer);
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let answer = answer.clone();
        async move {
            let request = WebRequest {
                method: req.method().as_str().to_string(),
                path: req.uri().path().to_string(),
                query: req.uri().query().unwrap_or_default().to_string(),
                credentials: req
                    .headers()
                    .get(AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(basic_credentials),
                peer,
            };
            let head = request.method == "HEAD";
            let r = answer(request).await;
            Ok::<_, Infallible>(to_hyper(r, head))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r.map_err(|e| format!("HTTP: {e}")),
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            Ok(())
        }
    }
}

fn to_hyper(r: WebResponse, head: bool) -> Response<Full<Bytes>> {
    let body = if head { Vec::new() } else { r.body };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if r.challenge {
        h.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"xrepl\", charset=\"UTF-8\""),
        );
    }
    resp
}

/// The process metrics every node exports (Prometheus' usual `process_*` names), read from
/// `/proc/self` (zeros where it cannot be read).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub threads: u64,
    /// When the process started, s since the epoch.
    pub start_time_s: f64,
}

impl ProcessStats {
    pub fn read() -> ProcessStats {
        let mut s = ProcessStats::default();
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // After the command name (in parentheses, which may hold spaces): fields 3...
            if let Some((_, rest)) = stat.rsplit_once(')') {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                // utime and stime are fields 14 and 15 (indexes 11 and 12 here).
                let ticks = rustix::param::clock_ticks_per_second().max(1);
                s.cpu_seconds = (num(11) + num(12)) as f64 / ticks as f64;
                s.threads = num(17);
                // starttime (field 22) is in ticks after the boot (`btime` of /proc/stat).
                let boot_s = std::fs::read_to_string("/proc/stat").ok().and_then(|st| {
                    st.lines()
                        .find_map(|l| l.strip_prefix("btime "))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                });
                s.start_time_s = boot_s.unwrap_or(0) as f64 + num(19) as f64 / ticks as f64;
                s.virtual_bytes = num(20);
                s.resident_bytes = num(21) * rustix::param::page_size() as u64;
            }
        }
        s.open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
        s
    }
}

/// OpenMetrics' text format, which Prometheus reads (what [`Exposition::encode`] writes).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a series, as name and value.
pub type Labels = Vec<(String, String)>;

type GaugeF = Gauge<f64, AtomicU64>;

/// A page of metrics built at each scrape from the node's current state (nothing is kept
/// between scrapes: every value is read where it lives), written by `prometheus-client`.
#[derive(Default)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        let g = GaugeF::default();
        g.set(value);
        self.registry.register(name, help, g);
    }

    /// A gauge with one series per label set.
    pub fn gauges(&mut self, name: &str, help: &str, series: Vec<(Labels, f64)>) {
        let f = Family::<Labels, GaugeF>::default();
        for (labels, v) in series {
            f.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, f);
    }

    /// `xrepl_build_info`: the node's alias, kind (`controller`, `datanode`), replication role
    /// and version, as labels of a gauge that is 1.
    pub fn build_info(
        &mut self,
        alias: &str,
        kind: &str,
        mode: Option<xrepl_core::config::ReplicationMode>,
    ) {
        let role = mode.map_or_else(|| "standalone".to_string(), |m| m.to_string());
        let l = |k: &str, v: &str| (k.to_string(), v.to_string());
        self.gauges(
            "xrepl_build_info",
            "The node: its alias, kind, replication role and version.",
            vec![(
                vec![
                    l("alias", alias),
                    l("kind", kind),
                    l("role", &role),
                    l("version", env!("CARGO_PKG_VERSION")),
                ],
                1.0,
            )],
        );
    }

    /// A counter (`name` without `_total`, which is added).
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        self.registry.register(name, help, c);
    }

    /// The usual process metrics.
    pub fn process(&mut self) {
        let p = ProcessStats::read();
        let cpu = Counter::<f64, AtomicU64>::default();
        cpu.inc_by(p.cpu_seconds);
        self.registry.register(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds.",
            cpu,
        );
        self.gauge(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            p.resident_bytes as f64,
        );
        self.gauge(
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
            p.virtual_bytes as f64,
        );
        self.gauge(
            "process_open_fds",
            "Number of open file descriptors.",
            p.open_fds as f64,
        );
        self.gauge("process_threads", "Number of OS threads.", p.threads as f64);
        self.gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            p.start_time_s,
        );
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_read_and_anything_else_is_none() {
        // "admin:pass:word" (a password may hold ':').
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:pass:word")
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("admin".into(), "pass:word".into()))
        );
        assert_eq!(basic_credentials("Bearer abc"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
        assert_eq!(basic_credentials("Basic"), None);
    }

    #[test]
    fn an_exposition_is_written_in_the_text_format() {
        let mut e = Exposition::default();
        e.gauge("xrepl_a", "A gauge.", 1.5);
        e.gauges(
            "xrepl_b",
            "Labelled.",
            vec![(vec![("set".into(), "0".into())], 2.0)],
        );
        e.counter("xrepl_c", "A counter.", 7);
        e.process();
        let text = e.encode();
        for line in [
            "xrepl_a 1.5",
            "xrepl_b{set=\"0\"} 2.0",
            "xrepl_c_total 7",
            "# TYPE process_cpu_seconds counter",
            "process_start_time_seconds ",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn process_stats_are_read_from_proc() {
        let s = ProcessStats::read();
        assert!(
            s.resident_bytes > 0 && s.open_fds > 0 && s.threads > 0,
            "{s:?}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        assert!(
            s.start_time_s > now - 3600.0 && s.start_time_s <= now + 1.0,
            "{s:?}"
        );
    }
}
