use super::*;

fn service() -> Transformer {
    Transformer::new().expect("embedded config is valid")
}

#[tokio::test]
async fn resize_on_the_embedded_config_makes_exact_sizes() {
    let out = service()
        .transform(&TransformJob::new(
            "width=300,format=webp",
            "/FreshFlower.jpg",
        ))
        .await
        .unwrap();
    assert_eq!((out.image.width, out.image.height), (300, 226));
    assert_eq!(&out.image.bytes[8..12], b"WEBP");
    assert!(out.original.body.len() > out.image.bytes.len());
}

#[tokio::test]
async fn batch_keeps_order_reports_each_error_and_respects_the_bound() {
    let s = service();
    let widths = [100u32, 200, 50, 320, 64];
    let mut requests: Vec<TransformJob> = widths
        .iter()
        .map(|w| TransformJob::new(&format!("width={w},format=jpeg"), "/GreenMeadow.jpg"))
        .collect();
    requests.insert(2, TransformJob::new("width=100", "/missing.jpg"));
    requests.push(TransformJob::new("width=0", "/GreenMeadow.jpg"));
    let results = s.transform_batch(requests, 2).await;
    assert_eq!(results.len(), 7);
    let made: Vec<u32> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().map(|m| m.image.width))
        .collect();
    assert_eq!(made, widths);
    assert_eq!(results[2].as_ref().unwrap_err().status, 404);
    assert_eq!(results[6].as_ref().unwrap_err().status, 400);
}

#[tokio::test]
async fn auto_format_follows_what_the_request_accepts() {
    let s = service();
    let mut req = TransformJob::new("width=64,format=auto", "/GreenMeadow.jpg");
    let jpeg = s.transform(&req).await.unwrap();
    assert_eq!(&jpeg.image.bytes[..2], &[0xFF, 0xD8]);
    req.accepts = Accepts {
        avif: false,
        webp: true,
    };
    let webp = s.transform(&req).await.unwrap();
    assert_eq!(&webp.image.bytes[8..12], b"WEBP");
}

#[tokio::test]
async fn a_download_nobody_else_got_keeps_no_decode() {
    let s = service();
    let out = s
        .transform(&TransformJob::new(
            "width=120,format=jpeg",
            "/GreenMeadow.jpg",
        ))
        .await
        .unwrap();
    assert_eq!(out.image.width, 120);
    assert!(!out.original.askers.is_shared());
    // Nothing to share it with: kept, it would only hold the pixels and the original.
    assert_eq!(s.pool.decodes().kept(), 0);
}
