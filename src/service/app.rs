//! The transform service as a Pingora HTTP app: reads the request, hands it to
//! [`TransformService`], writes the [`Reply`]. No logic of its own.

use super::http::{
    Reply, TransformRequest, TransformService, NEGOTIATED_FORMAT_HEADER, PURGED_AT_HEADER,
    SLOW_CONNECTION_HEADER,
};
use crate::forwarded::combined_field;
use crate::spec::ConnectionHints;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

pub struct TransformApp {
    pub service: Arc<TransformService>,
}

#[async_trait]
impl ServeHttp for TransformApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        crate::cpu::register_current_thread();
        let req = session.req_header();
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let host = header("host").or_else(|| req.uri.host()).unwrap_or("");
        let path = req.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let reply = if req.method != http::Method::GET && req.method != http::Method::HEAD {
            Reply {
                status: 405,
                headers: vec![
                    ("allow", "GET, HEAD".into()),
                    ("content-type", "text/plain".into()),
                ],
                body: b"method not allowed\n".to_vec(),
            }
        } else {
            // Every `Accept` line counts, combined as one list as the edge combines it.
            let accept = combined_field(&req.headers, "accept")
                .map(|v| String::from_utf8_lossy(&v).into_owned());
            let request = TransformRequest {
                host,
                path,
                negotiated: header(NEGOTIATED_FORMAT_HEADER),
                connection: header(SLOW_CONNECTION_HEADER),
                hints: ConnectionHints::read(header),
                accept: accept.as_deref(),
                if_none_match: header("if-none-match"),
                purged_at: header(PURGED_AT_HEADER)
                    .and_then(|ms| ms.parse::<u64>().ok())
                    .map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            };
            self.service.handle(&request).await
        };
        let mut builder = Response::builder().status(reply.status);
        for (name, value) in &reply.headers {
            builder = builder.header(*name, value.as_str());
        }
        builder = builder.header("content-length", reply.body.len().to_string());
        builder.body(reply.body).unwrap_or_else(|e| {
            log::error!("building reply failed: {e}");
            let mut r = Response::new(b"internal error\n".to_vec());
            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }
}
