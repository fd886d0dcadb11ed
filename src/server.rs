//! Wiring: builds the Pingora server and its services (edge, transform service, admin) from
//! a validated [`Config`]. The binary starts imgate through here.

use crate::access_log::AccessLog;
use crate::admin::{AdminServer, CacheApi};
use crate::cache::TieredStorage;
use crate::cluster::{Bus, BusService, Ring};
use crate::config::Config;
use crate::proxy::client_conn::ClientConnections;
use crate::proxy::{Cluster, Edge, KeepDate};
use crate::readiness::Readiness;
use crate::service::{Facing, TransformApp, TransformService};
use crate::tls::acme::{AcmeService, Challenges};
use crate::tls::gate::HandshakeGate;
use crate::tls::{CertReloader, Certificates};
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::{L4BufferSettings, ListenerConfig};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::background::{background_service, GenBackgroundService};
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
pub fn build(config: Config, role: Role) -> anyhow::Result<Server> {
    crate::metrics::init();
    crate::cpu::set_memory_release(config.performance.eager_memory_release);
    let mut server = Server::new_with_opt_and_conf(None, pingora_conf(&config)?);
    server.bootstrap();
    let config = Arc::new(config);
    let facing = match role {
        Role::All => Facing::Edge,
        Role::Transform => Facing::Clients,
    };
    let service = Arc::new(TransformService::new(config.clone(), facing));

    let app = TransformApp { service };
    let mut cache_api = None;
    let ready = Readiness::default();
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
            let mut api = CacheApi {
                config: config.clone(),
                storage,
                ring: None,
                bus: None,
            };
            let access_log = match &config.access_log {
                Some(log) => {
                    Some(AccessLog::start(log).map_err(|e| anyhow::anyhow!("access_log: {e}"))?)
                }
                None => None,
            };
            let mut edge = Edge::new(config.clone(), storage).with_access_log(access_log);
            // ACME challenges in progress: answered by the proxy (HTTP-01) and the handshake
            // gate (TLS-ALPN-01).
            let challenges = Arc::new(Challenges::default());
            if config.tls.as_ref().is_some_and(|t| t.acme.is_some()) {
                edge = edge.with_challenges(challenges.clone());
            }
            if let Some(cluster) = &config.cluster {
                let (ring, balancer) =
                    Ring::new(cluster).map_err(|e| anyhow::anyhow!("cluster peers: {e}"))?;
                server.add_service(GenBackgroundService::new(
                    "imgate cluster ring".to_string(),
                    balancer,
                ));
                let ring = Arc::new(ring);
                api.ring = Some(ring.clone());
                crate::metrics::init_cluster();
                let bus = match &cluster.redis_url {
                    Some(url) => {
                        let bus = Bus::new(url, cluster.me.to_string(), config.clone(), storage)
                            .map_err(|e| anyhow::anyhow!("cluster.redis_url: {e}"))?;
                        let bus = Arc::new(bus);
                        server.add_service(background_service(
                            "imgate purge bus",
                            BusService(bus.clone()),
                        ));
                        Some(bus)
                    }
                    None => None,
                };
                api.bus = bus.clone();
                edge = edge.with_cluster(Arc::new(Cluster {
                    config: cluster.clone(),
                    ring,
                    bus,
                }));
                // Peers' requests: the same cache, never forwarded again.
                let peers = pingora_proxy::http_proxy(
                    &server.configuration,
                    edge.facing_peers(ready.clone()),
                );
                let peers = ClientConnections::new(peers, config.clients);
                let mut listener =
                    Service::new("imgate cluster".to_string(), KeepDate(Arc::new(peers)));
                listener.add_tcp(&cluster.listen.to_string());
                server.add_service(listener);
            }
            cache_api = Some(api);
            let proxy = pingora_proxy::http_proxy(&server.configuration, edge);
            // Request heads are read under `clients` deadlines and budgets before the proxy
            // sees them (Pingora has no head deadline of its own), on streams that keep each
            // response's own `Date` (proxy::KeepDate).
            let clients = ClientConnections::new(proxy, config.clients);
            let mut edge = Service::new("imgate edge".to_string(), KeepDate(Arc::new(clients)));
            let buffer =
                L4BufferSettings::default().write(config.performance.response_write_buffer);
            edge.add_listener(ListenerConfig::tcp(config.listen.clone()).l4_buffer(buffer));
            if let Some(tls) = &config.tls {
                // The same edge over TLS: the certificate by SNI, HTTP/2 or HTTP/1.1 by ALPN.
                let certs =
                    Arc::new(Certificates::load(tls).map_err(|e| anyhow::anyhow!("tls: {e}"))?);
                let reloader = CertReloader::new(certs.clone())
                    .map_err(|e| anyhow::anyhow!("tls: SIGHUP handler: {e}"))?;
                server.add_service(background_service("imgate tls reload", reloader));
                if let Some(acme) = &tls.acme {
                    server.add_service(background_service(
                        "imgate acme",
                        AcmeService::new(acme.clone(), certs.clone(), challenges.clone()),
                    ));
                }
                let mut settings = TlsSettings::intermediate("", "")?;
                settings.set_cert_resolver(certs);
                settings.enable_h2();
                // The same write buffer under TLS: a response's header and body records leave
                // in one write.
                edge.add_listener(
                    ListenerConfig::tcp(tls.listen.clone())
                        .tls(settings)
                        .l4_buffer(buffer),
                );
                // Each ClientHello is looked at first: minimum version, TLS-ALPN-01.
                edge.endpoints()
                    .set_pre_tls_callback(Arc::new(HandshakeGate {
                        min_version: tls.min_version,
                        challenges,
                        hello_timeout: config.clients.header_timeout,
                    }));
            }
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
        AdminServer::new(&config.admin_listen, cache_api, ready),
    ));
    Ok(server)
}

/// Pingora's `ServerConf`: the config's `pingora:` section as written, with the thread count,
/// CA file and passthrough pool size that validation settled.
pub fn pingora_conf(config: &Config) -> anyhow::Result<ServerConf> {
    let mut conf: ServerConf = match &config.pingora {
        Some(section) => serde_yaml::from_value(section.clone())?,
        None => ServerConf::default(),
    };
    conf.threads = config.threads;
    conf.ca_file = config.ca_file.clone();
    conf.upstream_keepalive_pool_size = config.passthrough_pool_size;
    Ok(conf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EnvOverrides;
    use std::path::Path;

    fn conf(yaml: &str) -> ServerConf {
        let config =
            Config::from_yaml(yaml, "t.yaml", Path::new("/"), &EnvOverrides::default()).unwrap();
        pingora_conf(&config).unwrap()
    }

    #[test]
    fn pingora_conf_keeps_the_section_and_adds_what_validation_settled() {
        let c = conf(
            "pingora: {threads: 3, grace_period_seconds: 7, ca_file: /etc/ca.pem}
\
             performance_overrides: {pool_size: 5}\n\
             sites: [{hosts: [a], origin: 'http://a'}, {hosts: [b], origin: 'https://b'}]",
        );
        assert_eq!(c.threads, 3);
        assert_eq!(c.grace_period_seconds, Some(7));
        assert_eq!(c.ca_file.as_deref(), Some("/etc/ca.pem"));
        assert_eq!(c.upstream_keepalive_pool_size, 10);
        // No section: Pingora's defaults; `threads: 0`: one per CPU.
        let site = "sites: [{origin: 'http://a'}]";
        assert_eq!(conf(site).threads, ServerConf::default().threads);
        assert_eq!(conf(site).ca_file, None);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(
            conf(&format!("pingora: {{threads: 0}}\n{site}")).threads,
            cpus
        );
    }
}
