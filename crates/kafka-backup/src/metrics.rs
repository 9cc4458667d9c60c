//! Serves the process's Prometheus metrics over HTTP while a command runs
//! (`--metrics-addr`), and writes them to a file when it ends (`--metrics-file`, for the
//! node-exporter textfile collector and CronJobs that end before a scrape).

use std::convert::Infallible;
use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::exit::{Exit, Failed};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Listens on `addr` now (so a wrong address fails the command at once) and serves
/// `GET /metrics` in the background for as long as the process runs.
pub async fn serve(addr: &str) -> Result<(), Failed> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Failed::new(
            Exit::Usage,
            format!(
                "cannot serve metrics on --metrics-addr {addr}: {e}; give a free HOST:PORT, e.g. \
                 127.0.0.1:9308 (0.0.0.0:9308 inside a container)"
            ),
        )
    })?;
    tracing::info!(addr = %addr, "serving Prometheus metrics at /metrics");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(answer);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

async fn answer(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let found = request.method() == Method::GET && request.uri().path() == "/metrics";
    let (status, body, content_type) = if found {
        (
            StatusCode::OK,
            backup_core::metrics::metrics().encode(),
            OPENMETRICS,
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "kafka-backup serves GET /metrics only\n".to_owned(),
            "text/plain; charset=utf-8",
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    Ok(response)
}

/// Writes the metrics to `path` whole, in the classic text format node-exporter's textfile
/// collector reads: to a temporary file beside it (`.tmp`, which that collector skips), then
/// renamed, so a collector never reads half a file.
pub fn write_file(path: &Path) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, backup_core::metrics::metrics().encode_classic())
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            format!(
                "cannot write the metrics to --metrics-file {}: {e}",
                path.display()
            )
        })
}
