//! A generated page for measuring the HTML rewriter: a typical blog/news layout with text,
//! links and one image per article in the common shapes. Test and bench code only: the
//! integration tests reach it as `support::sample_page`, and the library's unit tests
//! (`src/rewrite/tests.rs`) and the Criterion bench (`benches/rewrite.rs`) include this file by
//! path, so all three measure the same page.

/// A page of about `bytes` bytes with an image in one article out of `image_every` (1: about
/// 1,650 images per MiB, an extreme; 20: about 80, a long image-rich page).
pub fn page(bytes: usize, image_every: usize) -> Vec<u8> {
    let mut page = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Bench</title>\
         <link rel=\"stylesheet\" href=\"/site.css\"></head><body><main>\n",
    );
    let mut i = 0;
    while page.len() < bytes {
        let img = match (i / image_every.max(1)) % 4 {
            _ if i % image_every.max(1) != 0 => String::new(),
            0 => format!("<img src=\"/photos/{i}.jpg\" alt=\"photo {i}\">"),
            1 => format!("<img src=\"../img/{i}.png\" width=\"400\" alt=\"figure\">"),
            2 => format!(
                "<img src=\"/a/{i}.jpg\" srcset=\"/a/{i}.jpg 480w, /a/{i}-l.jpg 1080w\" sizes=\"50vw\">"
            ),
            _ => format!(
                "<picture><source type=\"image/webp\" srcset=\"/p/{i}.webp 1x, /p/{i}@2x.webp 2x\">\
                 <img src=\"/p/{i}.jpg\"></picture>"
            ),
        };
        page.push_str(&format!(
            "<article class=\"post\" id=\"post-{i}\"><h2><a href=\"/posts/{i}\">Post number {i}</a></h2>\
             {img}<p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor \
             incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud \
             exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. <em>Duis aute</em> \
             irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla \
             pariatur.</p><p>Excepteur sint occaecat cupidatat non proident, sunt in culpa qui \
             officia deserunt mollit anim id est laborum.</p></article>\n"
        ));
        i += 1;
    }
    page.push_str("</main></body></html>\n");
    page.into_bytes()
}
