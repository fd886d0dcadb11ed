//! `Transformer`, the library entry point: fetch an original from a site's origin, run the
//! pipeline on the CPU pool, return the encoded image. No HTTP serving and no cache: the
//! transform service builds responses on top of it, and programs can use it on their own
//! (batch jobs, cache warming, tests).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use imgate::service::{TransformJob, Transformer};
//! let service = Transformer::new()?; // the embedded example config
//! let out = service.transform(&TransformJob::new("width=300,format=webp", "/FreshFlower.jpg")).await?;
//! println!("{}x{} {} bytes", out.image.width, out.image.height, out.image.bytes.len());
//! # Ok(()) }
//! ```

use crate::config::{Config, ConfigError, EnvOverrides, HttpOrigin, Origin, OverlayImage, Site};
use crate::cpu::cost;
use crate::cpu::CpuPool;
use crate::error::{Blame, ImgateError};
use crate::metrics;
use crate::origin::{Access, Fetched, OriginFetcher};
use crate::pipeline::{self, Processed};
use crate::route::{self, Source};
use crate::spec::{self, Accepts, FormatRequest, TransformSpec};
use bytes::Bytes;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// One image to make: transform options in the URL syntax (`width=300,format=auto`), a source
/// (a path on the site's origin or an allowed absolute URL) and the formats the client takes.
#[derive(Debug, Clone)]
pub struct TransformJob {
    /// Picks the site (and so the origin); `""` means the first site.
    pub host: String,
    pub options: String,
    pub source: String,
    /// For `format=auto`: which modern formats the client accepts.
    pub accepts: Accepts,
}

impl TransformJob {
    /// A request on the first site that accepts neither AVIF nor WebP for `format=auto`.
    pub fn new(options: &str, source: &str) -> TransformJob {
        TransformJob {
            host: String::new(),
            options: options.to_string(),
            source: source.to_string(),
            accepts: Accepts::default(),
        }
    }
}

/// An image made: the encoded output and what the original said about itself.
#[derive(Debug)]
pub struct Transformed {
    pub spec: TransformSpec,
    pub image: Processed,
    pub original: Fetched,
    pub fetch_time: Duration,
}

pub struct Transformer {
    config: Arc<Config>,
    fetcher: OriginFetcher,
    pool: CpuPool,
}

impl Transformer {
    /// A service on the embedded example config (sample images from a local directory).
    pub fn new() -> Result<Transformer, ConfigError> {
        let config = Config::embedded_default(&EnvOverrides::default())?;
        Ok(Transformer::with_config(Arc::new(config)))
    }

    /// A service on a validated config: its sites, limits, performance settings and CA file.
    pub fn with_config(config: Arc<Config>) -> Transformer {
        let perf = &config.performance;
        Transformer {
            fetcher: OriginFetcher::new(perf, config.max_source_bytes, config.ca_file.clone()),
            pool: CpuPool::new(
                perf.max_concurrent_processing,
                perf.processing_queue,
                perf.shared_decode_bytes,
                perf.processing_budget_bytes,
            ),
            config,
        }
    }

    /// Make one image. Errors carry the HTTP status a server would answer with.
    pub async fn transform(&self, req: &TransformJob) -> Result<Transformed, ImgateError> {
        let site = self.site(&req.host)?;
        let spec = spec::parse_options(&req.options)?;
        let source = route::parse_source(&req.source).map_err(ImgateError::bad_request)?;
        let accepts = if spec.format == FormatRequest::Auto {
            req.accepts
        } else {
            Accepts::default()
        };
        self.render(site, spec, &source, accepts, None).await
    }

    /// Make many images, at most `max_concurrent` at a time (downloads and CPU work are also
    /// bounded by the service's own limits). Results come back in request order.
    pub async fn transform_batch(
        &self,
        requests: Vec<TransformJob>,
        max_concurrent: usize,
    ) -> Vec<Result<Transformed, ImgateError>> {
        let gate = Semaphore::new(max_concurrent.max(1));
        let jobs = requests.iter().map(|req| async {
            // Never closed, so acquiring cannot fail.
            let _permit = gate.acquire().await.expect("semaphore open");
            self.transform(req).await
        });
        futures::future::join_all(jobs).await
    }

    fn site(&self, host: &str) -> Result<&Site, ImgateError> {
        if host.is_empty() {
            return self.config.sites.first().ok_or_else(no_site);
        }
        self.config
            .site_for(host)
            .map(|(_, s)| s)
            .ok_or_else(no_site)
    }

    /// Fetch and transform, for a site and an already parsed spec and source.
    pub(crate) async fn render(
        &self,
        site: &Site,
        spec: TransformSpec,
        source: &Source,
        accepts: Accepts,
        not_before: Option<SystemTime>,
    ) -> Result<Transformed, ImgateError> {
        let (origin, access, path) = origin_for(site, source)?;
        let started = Instant::now();
        let original = self
            .fetcher
            .fetch_with(&origin, &access, &path, not_before)
            .await
            .map_err(ImgateError::from)?;
        let fetch_time = started.elapsed();
        let overlay = self.overlay(site, &spec).await?;

        let limits = self.config.limits.clone();
        // The header says what the job will cost before anything is decoded. A header parse
        // bounded by the input's length (no pixels), so it runs here rather than taking a
        // pool thread behind the jobs it is meant to keep in check.
        let footprint = pipeline::footprint(&original.body, &spec, accepts, &limits)?;
        cost::check_output_pixels(&footprint, self.config.max_output_pixels)?;
        let mut job_cost = cost::estimate(&footprint, original.body.len());
        if let Some((image, _)) = &overlay {
            // Probed here (a bounded header read), like the original: refused before any
            // pixel is decoded, and its decode counted against the budget.
            let p = pipeline::probe(image, &limits).map_err(|e| {
                ImgateError::new(
                    502,
                    "watermark could not be read",
                    format!("watermark: {e}"),
                    Blame::Upstream,
                )
            })?;
            if u64::from(p.width) * u64::from(p.height) > pipeline::MAX_OVERLAY_PIXELS {
                return Err(ImgateError::new(
                    502,
                    "watermark too large",
                    format!("watermark of {}x{} is over 16 MP", p.width, p.height),
                    Blame::Upstream,
                ));
            }
            job_cost += pipeline::overlay_cost(p.width, p.height) + image.len() as u64;
        }
        let input = original.body.clone();
        let job_spec = spec.clone();
        let decodes = self.pool.decodes();
        let askers = original.askers.clone();
        let image = self
            .pool
            .run(job_cost, move || {
                // Asked when the job starts, by which time the askers that joined its download
                // have counted. A download nobody else got has no other variant to share a
                // decode with: keeping its decode would hold memory (and the original, against
                // the source budget) for nothing.
                let overlay = overlay
                    .as_ref()
                    .map(|(image, placement)| pipeline::Overlay {
                        image,
                        placement: *placement,
                    });
                let overlay = overlay.as_ref();
                if askers.is_shared() {
                    let share = decodes.for_input(input.clone());
                    let share = Some(&share as &dyn pipeline::DecodeShare);
                    pipeline::process_shared(&input, &job_spec, accepts, &limits, share, overlay)
                } else {
                    pipeline::process_shared(&input, &job_spec, accepts, &limits, None, overlay)
                }
            })
            .await?;
        record_steps(&image);
        Ok(Transformed {
            spec,
            image,
            original,
            fetch_time,
        })
    }

    /// The picture and placement of the watermark `spec` names on `site`, with the URL's
    /// adjustments; `None` without one (or for `format=json`, which draws nothing). A file's
    /// bytes were read at load; an origin path is fetched like an original (and shares its
    /// downloads and source cache).
    async fn overlay(
        &self,
        site: &Site,
        spec: &TransformSpec,
    ) -> Result<Option<(Bytes, pipeline::Placement)>, ImgateError> {
        let Some(w) = spec
            .watermark
            .as_ref()
            .filter(|_| spec.format != FormatRequest::Json)
        else {
            return Ok(None);
        };
        let def = site.watermarks.get(&w.name).ok_or_else(|| {
            ImgateError::new(
                400,
                "watermark: no watermark of that name",
                format!("watermark {:?} is not configured", w.name),
                Blame::Downstream,
            )
        })?;
        let image = match &def.image {
            OverlayImage::File(bytes) => bytes.clone(),
            OverlayImage::Source(path) => {
                self.fetch(site, path, None)
                    .await
                    .map_err(|e| {
                        ImgateError::new(
                            502,
                            "watermark could not be fetched",
                            format!("watermark {:?} from {path}: {e}", w.name),
                            Blame::Upstream,
                        )
                    })?
                    .body
            }
        };
        Ok(Some((image, def.placement.adjusted(w))))
    }

    /// Fetch a file of `site`'s origin unchanged (the passthrough route of directory origins).
    pub(crate) async fn fetch(
        &self,
        site: &Site,
        path: &str,
        not_before: Option<SystemTime>,
    ) -> Result<Fetched, ImgateError> {
        let access = site
            .source_access(&Source::Path(path.to_string()))
            .map_err(|refused| ImgateError::new(403, refused, refused, Blame::Downstream))?;
        self.fetcher
            .fetch_with(&site.origin, &access, path, not_before)
            .await
            .map_err(ImgateError::from)
    }
}

fn no_site() -> ImgateError {
    ImgateError::new(404, "unknown site", "no site matches", Blame::Downstream)
}

/// The origin, access and path an original comes from: the site's origin, or an allowed
/// absolute URL (reaching public addresses only, unless the site says otherwise).
fn origin_for(site: &Site, source: &Source) -> Result<(Origin, Access, String), ImgateError> {
    let access = site.source_access(source).map_err(|refused| {
        ImgateError::new(
            403,
            refused,
            format!("{}: {refused}", source.key()),
            Blame::Downstream,
        )
    })?;
    match source {
        Source::Path(p) => Ok((site.origin.clone(), access, p.clone())),
        Source::Url {
            https,
            host,
            port,
            path,
        } => {
            let origin = HttpOrigin {
                tls: *https,
                host: host.clone(),
                port: port.unwrap_or(if *https { 443 } else { 80 }),
                base_path: String::new(),
            };
            Ok((Origin::Http(origin), access, path.clone()))
        }
    }
}

fn record_steps(p: &Processed) {
    for (step, took) in [
        ("decode", p.timings.decode),
        ("resize", p.timings.resize),
        ("encode", p.timings.encode),
    ] {
        metrics::STEP_DURATION
            .with_label_values(&[step])
            .observe(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
