//! Wiring: builds the Pingora server and its services (edge, transform service, admin) from
//! a validated [`Config`]. The binary starts imgate through here.

use crate::access_log::AccessLog;
use crate::admin::{AdminServer, CacheApi};
use crate::cache::TieredStorage;
use crate::config::Config;
use crate::proxy::client_conn::ClientConnections;
use crate::proxy::{Edge, KeepDate};
use crate::service::{TransformApp, TransformService};
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::Server;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

/// Which parts of imgate this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Edge + transform service (over a Unix socket) + admin: the normal deployment.
    All,
    /// Only the transform service, listening on `listen` over TCP, plus admin; lets the CPU tier
    /// scale apart from the edge.
    Transform,
}

/// Build a ready-to-run Pingora server.
pub fn build(mut config: Config, role: Role) -> anyhow::Result<Server> {
    crate::metrics::init();
    crate::service::set_memory_release(config.performance.eager_memory_release);
    let server_conf = std::mem::take(&mut config.server);
    // Pingora owns the server section now; the origin fetcher still needs the CA it names.
    config.server.ca_file = server_conf.ca_file.clone();
    let mut server = Server::new_with_opt_and_conf(None, server_conf);
    server.bootstrap();
    let config = Arc::new(config);
    let service = Arc::new(TransformService::new(config.clone()));

    let app = TransformApp { service };
    let mut cache_api = None;
    match role {
        Role::All => {
            let mut transform = Service::new("imgate transform".to_string(), app);
            let socket = config.transform_socket.to_string_lossy().to_string();
            // A socket left by a crashed run would make the bind fail.
            let _ = std::fs::remove_file(&socket);
            transform.add_uds(&socket, Some(std::fs::Permissions::from_mode(0o600)));
            server.add_service(transform);
            let storage = match &config.cache.dir {
                Some(dir) => TieredStorage::with_disk(
                    config.cache.memory_bytes,
                    dir,
                    config.cache.disk_bytes,
                )
                .map_err(|e| anyhow::anyhow!("cache.dir {}: {e}", dir.display()))?,
                None => TieredStorage::new(config.cache.memory_bytes),
            }
            .leak();
            cache_api = Some(CacheApi {
                config: config.clone(),
                storage,
            });
            let access_log = match &config.access_log {
                Some(log) => {
                    Some(AccessLog::start(log).map_err(|e| anyhow::anyhow!("access_log: {e}"))?)
                }
                None => None,
            };
            let proxy = pingora_proxy::http_proxy(
                &server.configuration,
                Edge::new(config.clone(), storage).with_access_log(access_log),
            );
            // Request heads are read under `clients` deadlines and budgets before the proxy
            // sees them (Pingora has no head deadline of its own), on streams that keep each
            // response's own `Date` (proxy::KeepDate).
            let clients = ClientConnections::new(proxy, config.clients);
            let mut edge = Service::new("imgate edge".to_string(), KeepDate(Arc::new(clients)));
            edge.add_listener(ListenerConfig::tcp(config.listen.clone()).l4_buffer(
                L4BufferSettings::default().write(config.performance.response_write_buffer),
            ));
            server.add_service(edge);
        }
        Role::Transform => {
            // Facing clients itself: the same head deadlines and budgets as the edge.
            let clients = ClientConnections::new(app, config.clients);
            let mut transform = Service::new("imgate transform".to_string(), clients);
            transform.add_tcp(&config.listen);
            server.add_service(transform);
        }
    }

    server.add_service(background_service(
        "imgate admin",
        AdminServer::new(&config.admin_listen, cache_api),
    ));
    Ok(server)
}
