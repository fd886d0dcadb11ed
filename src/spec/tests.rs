use super::*;

fn ok(s: &str) -> TransformSpec {
    match parse_options(s) {
        Ok(spec) => spec,
        Err(e) => panic!("{s:?} should parse, got {e}"),
    }
}

fn err(s: &str) -> String {
    match parse_options(s) {
        Ok(spec) => panic!("{s:?} should fail, parsed as {spec:?}"),
        Err(SpecError(msg)) => msg,
    }
}

fn with(f: impl FnOnce(&mut TransformSpec)) -> TransformSpec {
    let mut spec = TransformSpec::default();
    f(&mut spec);
    spec
}

fn rgba(r: u8, g: u8, b: u8, a: u8) -> Option<Rgba> {
    Some(Rgba([r, g, b, a]))
}

#[test]
fn default_means_nothing_set() {
    let d = TransformSpec::default();
    assert_eq!(d.dpr_centi, 100);
    assert!(d.anim);
    assert_eq!(d.canonical(), "");
    assert_eq!(d.to_string(), "");
    assert_eq!(ok("dpr=1"), d);
    assert_eq!(ok("anim=true"), d);
    assert_eq!(ok("fit=scale-down,gravity=center,metadata=none"), d);
}

/// Every key and alias but `gravity`'s values (below).
#[test]
fn every_key_and_alias() {
    assert_eq!(ok("width=300"), with(|s| s.width = Some(300)));
    assert_eq!(ok("w=300"), with(|s| s.width = Some(300)));
    assert_eq!(ok("height=200"), with(|s| s.height = Some(200)));
    assert_eq!(ok("h=200"), with(|s| s.height = Some(200)));
    assert_eq!(ok("dpr=2"), with(|s| s.dpr_centi = 200));
    assert_eq!(ok("dpr=1.5"), with(|s| s.dpr_centi = 150));
    assert_eq!(ok("dpr=1.255"), with(|s| s.dpr_centi = 126));
    assert_eq!(ok("dpr=1.254"), with(|s| s.dpr_centi = 125));
    for (v, fit) in [
        ("scale-down", Fit::ScaleDown),
        ("contain", Fit::Contain),
        ("cover", Fit::Cover),
        ("crop", Fit::Crop),
        ("pad", Fit::Pad),
    ] {
        assert_eq!(ok(&format!("fit={v}")), with(|s| s.fit = fit));
    }
    assert_eq!(ok("quality=80"), with(|s| s.quality = Some(80)));
    assert_eq!(ok("q=80"), with(|s| s.quality = Some(80)));
    for (v, f) in [
        ("auto", FormatRequest::Auto),
        ("jpeg", FormatRequest::Fixed(OutputFormat::Jpeg)),
        ("jpg", FormatRequest::Fixed(OutputFormat::Jpeg)),
        ("png", FormatRequest::Fixed(OutputFormat::Png)),
        ("webp", FormatRequest::Fixed(OutputFormat::Webp)),
        ("avif", FormatRequest::Fixed(OutputFormat::Avif)),
        ("json", FormatRequest::Json),
    ] {
        assert_eq!(ok(&format!("format={v}")), with(|s| s.format = f));
        assert_eq!(ok(&format!("f={v}")), with(|s| s.format = f));
    }
    assert_eq!(
        ok("background=red"),
        with(|s| s.background = rgba(255, 0, 0, 255))
    );
    assert_eq!(ok("blur=5"), with(|s| s.blur_deci = Some(50)));
    assert_eq!(ok("blur=2.55"), with(|s| s.blur_deci = Some(26)));
    assert_eq!(ok("sharpen=1.5"), with(|s| s.sharpen_deci = Some(15)));
    assert_eq!(ok("sharpen=0"), TransformSpec::default());
    assert_eq!(ok("sharpen=0.04"), TransformSpec::default());
    assert_eq!(ok("rotate=0"), TransformSpec::default());
    for r in [90u16, 180, 270] {
        assert_eq!(ok(&format!("rotate={r}")), with(|s| s.rotate = Some(r)));
    }
    for (v, f) in [
        ("h", Flip::Horizontal),
        ("v", Flip::Vertical),
        ("hv", Flip::Both),
        ("vh", Flip::Both),
    ] {
        assert_eq!(ok(&format!("flip={v}")), with(|s| s.flip = f));
    }
    for v in ["grayscale", "grayscale=true", "grayscale=1"] {
        assert_eq!(ok(v), with(|s| s.grayscale = true));
    }
    for v in ["grayscale=false", "grayscale=0"] {
        assert_eq!(ok(v), TransformSpec::default());
    }
    assert_eq!(ok("metadata=none"), TransformSpec::default());
    assert_eq!(
        ok("metadata=copyright"),
        with(|s| s.metadata = Metadata::Copyright)
    );
    assert_eq!(ok("metadata=keep"), with(|s| s.metadata = Metadata::Keep));
    assert_eq!(ok("anim=false"), with(|s| s.anim = false));
    assert_eq!(ok("anim=true"), TransformSpec::default());
    assert_eq!(ok("compression=fast"), with(|s| s.compression_fast = true));
    assert_eq!(ok("onerror=redirect"), with(|s| s.onerror_redirect = true));
    assert_eq!(ok("scq=40"), with(|s| s.slow_quality = Some(40)));
    assert_eq!(ok("slow-connection-quality=40"), ok("scq=40"));
    assert_eq!(ok("quality=80,scq=40").canonical(), "quality=80,scq=40");
    // imgate's JPEG is baseline: the two names are one output and one cache entry.
    assert_eq!(ok("format=baseline-jpeg"), ok("format=jpeg"));
    assert_eq!(ok("format=baseline-jpeg").canonical(), "format=jpeg");
    assert_eq!(
        ok("onerror=redirect,compression=fast").canonical(),
        "compression=fast,onerror=redirect"
    );
}

#[test]
fn every_gravity_name_and_focal_point() {
    for (v, g) in [
        ("auto", Gravity::Auto),
        ("center", Gravity::Center),
        ("centre", Gravity::Center),
        ("top", Gravity::Top),
        ("north", Gravity::Top),
        ("bottom", Gravity::Bottom),
        ("south", Gravity::Bottom),
        ("left", Gravity::Left),
        ("west", Gravity::Left),
        ("right", Gravity::Right),
        ("east", Gravity::Right),
        ("top-left", Gravity::TopLeft),
        ("top-right", Gravity::TopRight),
        ("bottom-left", Gravity::BottomLeft),
        ("bottom-right", Gravity::BottomRight),
        (
            "0.25x0.75",
            Gravity::Point {
                x_milli: 250,
                y_milli: 750,
            },
        ),
        (
            "0.1234x.5",
            Gravity::Point {
                x_milli: 123,
                y_milli: 500,
            },
        ),
        (
            "0x1",
            Gravity::Point {
                x_milli: 0,
                y_milli: 1000,
            },
        ),
    ] {
        assert_eq!(ok(&format!("gravity={v}")), with(|s| s.gravity = g), "{v}");
    }
}

#[test]
fn whitespace_around_items_is_tolerated() {
    let expected = with(|s| {
        s.width = Some(300);
        s.quality = Some(80);
        s.grayscale = true;
    });
    assert_eq!(ok("  w=300 , q = 80,\tgrayscale "), expected);
}

#[test]
fn bounds_are_inclusive_and_neighbours_rejected() {
    // (option, lowest valid, highest valid, just below, just above)
    let cases = [
        ("width", "1", "12000", "0", "12001"),
        ("height", "1", "12000", "0", "12001"),
        ("dpr", "1", "4", "0.99", "4.01"),
        ("quality", "1", "100", "0", "101"),
        ("blur", "1", "250", "0.9", "250.1"),
        ("sharpen", "0", "10", "-0.1", "10.1"),
    ];
    for (key, lo, hi, below, above) in cases {
        ok(&format!("{key}={lo}"));
        ok(&format!("{key}={hi}"));
        for bad in [below, above] {
            let msg = err(&format!("{key}={bad}"));
            assert!(
                msg.starts_with(&format!("{key}: must be")),
                "{key}={bad}: {msg}"
            );
        }
    }
    assert_eq!(ok("dpr=4.000").dpr_centi, 400);
    err("dpr=4.0000001");
    err("dpr=0.9999");
    assert_eq!(
        ok("w=12000,h=1"),
        with(|s| {
            s.width = Some(12000);
            s.height = Some(1);
        })
    );
    ok("gravity=0x0");
    ok("gravity=1x1");
    ok("gravity=1.000x0.000");
    assert!(err("gravity=1.001x0").starts_with("gravity:"));
    assert!(err("gravity=0x1.001").starts_with("gravity:"));
    assert_eq!(ok("background=rgba(0,0,0,0)").background, rgba(0, 0, 0, 0));
    assert_eq!(
        ok("background=rgba(0,0,0,1)").background,
        rgba(0, 0, 0, 255)
    );
    assert!(err("background=rgba(0,0,0,1.1)").starts_with("background:"));
    assert_eq!(
        ok("background=rgb(255,255,255)").background,
        rgba(255, 255, 255, 255)
    );
    assert!(err("background=rgb(256,0,0)").starts_with("background:"));
    assert!(err("background=rgb(-1,0,0)").starts_with("background:"));
    assert!(err("width=99999999999999999999999999999").starts_with("width:"));
}

#[test]
fn every_error_names_its_option() {
    let cases = [
        ("width=abc", "width: must be an integer between 1 and 12000"),
        ("w=1.5", "width: must be an integer between 1 and 12000"),
        ("w=+5", "width: must be an integer between 1 and 12000"),
        ("h=-1", "height: must be an integer between 1 and 12000"),
        ("dpr=x", "dpr: must be a number between 1 and 4"),
        ("dpr=1e0", "dpr: must be a number between 1 and 4"),
        ("dpr=.", "dpr: must be a number between 1 and 4"),
        ("dpr=NaN", "dpr: must be a number between 1 and 4"),
        (
            "fit=fill",
            "fit: must be one of scale-down, contain, cover, crop, pad, squeeze",
        ),
        (
            "fit=Cover",
            "fit: must be one of scale-down, contain, cover, crop, pad, squeeze",
        ),
        ("q=0", "quality: must be an integer between 1 and 100"),
        (
            "f=gif",
            "format: must be one of auto, jpeg, baseline-jpeg, png, webp, avif, json",
        ),
        ("blur=0", "blur: must be a number between 1 and 250"),
        ("sharpen=11", "sharpen: must be a number between 0 and 10"),
        ("rotate=45", "rotate: must be 0, 90, 180 or 270"),
        ("rotate=360", "rotate: must be 0, 90, 180 or 270"),
        ("flip=x", "flip: must be h, v or hv"),
        ("grayscale=yes", "grayscale: must be true or false"),
        (
            "metadata=all",
            "metadata: must be one of none, copyright, keep",
        ),
        ("anim=no", "anim: must be true or false"),
        ("compression=slow", "compression: must be fast"),
        ("onerror=404", "onerror: must be redirect"),
        (
            "scq=0",
            "slow-connection-quality: must be an integer between 1 and 100",
        ),
        (
            "cachebuster=a/b",
            "cachebuster: must be 1 to 64 letters, digits, '-', '_' or '.'",
        ),
        ("width=", "width: missing value"),
        ("width", "width: missing value"),
        ("q= ", "quality: missing value"),
        ("grayscale=", "grayscale: missing value"),
        ("w=1,width=2", "width: given more than once"),
        ("f=auto,format=png", "format: given more than once"),
        (
            "grayscale,grayscale=false",
            "grayscale: given more than once",
        ),
        ("foo=1", "unknown option: foo"),
        ("Width=1", "unknown option: Width"),
        ("=5", "option without a name"),
        ("", "no options given"),
        ("   ", "no options given"),
        ("w=1,,h=2", "empty option (stray comma)"),
        ("w=1,", "empty option (stray comma)"),
        (",w=1", "empty option (stray comma)"),
    ];
    for (input, expected) in cases {
        assert_eq!(err(input), expected, "input {input:?}");
    }
    for bad in [
        "gravity=middle",
        "gravity=0.5",
        "gravity=x",
        "gravity=0.5x",
        "gravity=axb",
    ] {
        assert!(err(bad).starts_with("gravity: must be"), "{bad}");
    }
    for bad in [
        "background=#ff",
        "background=#ggg",
        "background=rgb(1,2)",
        "background=pink",
    ] {
        assert!(err(bad).starts_with("background: must be"), "{bad}");
    }
}

#[test]
fn errors_echo_little_input() {
    let long_key = "k".repeat(10_000);
    let msg = err(&format!("{long_key}=1"));
    assert!(msg.starts_with("unknown option: kkk"));
    assert!(msg.len() <= 64, "{} chars", msg.len());
    let msg = err("\u{e9}\u{e9}\u{e9}\r\n\u{1F600}x=1");
    assert_eq!(msg, "unknown option: ??????x");
    let msg = err(&format!("w={}", "9".repeat(5000)));
    assert!(msg.len() <= 64);
    let msg = err(&"\u{1F600}".repeat(100));
    assert!(msg.len() <= 64 && msg.ends_with("..."), "{msg}");
}

#[test]
fn css_colours() {
    let cases = [
        ("#fff", rgba(255, 255, 255, 255)),
        ("#FFF", rgba(255, 255, 255, 255)),
        ("#f00a", rgba(255, 0, 0, 0xaa)),
        ("#102030", rgba(0x10, 0x20, 0x30, 255)),
        ("#10203040", rgba(0x10, 0x20, 0x30, 0x40)),
        ("%23abcdef", rgba(0xab, 0xcd, 0xef, 255)),
        ("rgb(1,2,3)", rgba(1, 2, 3, 255)),
        ("rgb( 1 , 2 , 3 )", rgba(1, 2, 3, 255)),
        ("RGB(1,2,3)", rgba(1, 2, 3, 255)),
        ("rgba(1,2,3,0.5)", rgba(1, 2, 3, 128)),
        ("rgba(1,2,3,.2)", rgba(1, 2, 3, 51)),
        ("rgba(1,2,3)", rgba(1, 2, 3, 255)),
        ("rgb(1,2,3,0)", rgba(1, 2, 3, 0)),
        ("black", rgba(0, 0, 0, 255)),
        ("white", rgba(255, 255, 255, 255)),
        ("White", rgba(255, 255, 255, 255)),
        ("red", rgba(255, 0, 0, 255)),
        ("green", rgba(0, 128, 0, 255)),
        ("blue", rgba(0, 0, 255, 255)),
        ("yellow", rgba(255, 255, 0, 255)),
        ("cyan", rgba(0, 255, 255, 255)),
        ("aqua", rgba(0, 255, 255, 255)),
        ("magenta", rgba(255, 0, 255, 255)),
        ("fuchsia", rgba(255, 0, 255, 255)),
        ("gray", rgba(128, 128, 128, 255)),
        ("grey", rgba(128, 128, 128, 255)),
        ("silver", rgba(192, 192, 192, 255)),
        ("maroon", rgba(128, 0, 0, 255)),
        ("olive", rgba(128, 128, 0, 255)),
        ("lime", rgba(0, 255, 0, 255)),
        ("teal", rgba(0, 128, 128, 255)),
        ("navy", rgba(0, 0, 128, 255)),
        ("purple", rgba(128, 0, 128, 255)),
        ("orange", rgba(255, 165, 0, 255)),
        ("transparent", rgba(0, 0, 0, 0)),
    ];
    for (v, expected) in cases {
        assert_eq!(ok(&format!("background={v}")).background, expected, "{v}");
    }
    for bad in [
        "#",
        "#12",
        "#12345",
        "#1234567",
        "#123456789",
        "#12g",
        "rgb(1,2,3",
        "rgb 1,2,3)",
        "hsl(1,2,3)",
        "rgb(1,2,3,4,5)",
        "rgb(1.5,2,3)",
        "rgba(1,2,3,50%)",
        "rgb()",
    ] {
        assert!(
            err(&format!("background={bad}")).starts_with("background:"),
            "{bad}"
        );
    }
}

#[test]
fn commas_inside_parentheses_stay_in_the_value() {
    let spec = ok("w=10,background=rgb(1,2,3),h=20");
    assert_eq!(spec.width, Some(10));
    assert_eq!(spec.height, Some(20));
    assert_eq!(spec.background, rgba(1, 2, 3, 255));
    let spec = ok("background=rgba(10, 20, 30, 1),fit=pad");
    assert_eq!(spec.background, rgba(10, 20, 30, 255));
    assert_eq!(spec.fit, Fit::Pad);
    // An unclosed parenthesis swallows the rest, which is then a bad colour.
    assert!(err("background=rgb(1,2,3,w=5").starts_with("background:"));
    // A stray closing parenthesis does not confuse the splitter.
    assert!(err("w=1),h=2").starts_with("width:"));
}

#[test]
fn equivalent_options_give_identical_specs() {
    let groups: &[&[&str]] = &[
        &["w=300,q=80", "quality=80,width=300", " q=80 , w=300 "],
        &[
            "w=300,dpr=1",
            "w=300",
            "width=300,dpr=1.00,anim=true,sharpen=0,rotate=0",
        ],
        &["flip=vh", "flip=hv"],
        &[
            "background=#fff",
            "background=white",
            "background=#ffffff",
            "background=#FFFFFFFF",
        ],
        &[
            "background=rgb(255,255,255)",
            "background=rgba(255,255,255,1)",
            "background=%23fff",
        ],
        &["f=jpg", "format=jpeg"],
        &["gravity=centre", "gravity=center"],
        &[
            "gravity=0.5x0.25",
            "gravity=.500x0.250",
            "gravity=0.4996x0.2504",
        ],
        &["grayscale", "grayscale=true", "grayscale=1"],
        &["dpr=2", "dpr=2.0", "dpr=1.999"],
        &["blur=2.5", "blur=2.50", "blur=2.549"],
    ];
    for group in groups {
        let first = ok(group[0]);
        for other in &group[1..] {
            let spec = ok(other);
            assert_eq!(spec, first, "{other} vs {}", group[0]);
            assert_eq!(spec.canonical(), first.canonical());
        }
    }
    assert_eq!(ok("background=white").canonical(), "background=#ffffff");
    assert_eq!(ok("flip=vh").canonical(), "flip=hv");
    assert_eq!(ok("q=80,w=300").canonical(), "width=300,quality=80");
}

#[test]
fn canonical_form_is_fixed() {
    let spec = ok(
        "anim=false,metadata=keep,grayscale,flip=v,rotate=90,sharpen=1.5,blur=2.5,\
         background=rgba(0,0,0,0.5),f=auto,q=75,gravity=0.3x0.7,fit=cover,dpr=2.25,h=200,w=300",
    );
    assert_eq!(
        spec.canonical(),
        "width=300,height=200,dpr=2.25,fit=cover,gravity=0.3x0.7,quality=75,format=auto,\
         background=#00000080,blur=2.5,sharpen=1.5,rotate=90,flip=v,grayscale=true,\
         metadata=keep,anim=false"
    );
    assert_eq!(spec.to_string(), spec.canonical());
    assert_eq!(ok(&spec.canonical()), spec);
}

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

fn random_extent(rng: &mut Rng) -> Extent {
    match rng.below(3) {
        0 => Extent::Full,
        1 => Extent::Pixels(rng.range(1, u64::from(MAX_CROP_PIXELS)) as u32),
        _ => Extent::Milli(rng.range(1, 999) as u16),
    }
}

fn random_crop(rng: &mut Rng) -> Option<Crop> {
    let px = |rng: &mut Rng| rng.range(0, u64::from(MAX_CROP_PIXELS)) as u32;
    Some(match rng.below(4) {
        0 => return None,
        1 => Crop::Edges {
            top: px(rng),
            right: px(rng),
            bottom: px(rng),
            left: px(rng),
        },
        2 => Crop::Rect {
            left: px(rng),
            top: px(rng),
            width: rng
                .coin()
                .then(|| rng.range(1, u64::from(MAX_CROP_PIXELS)) as u32),
            height: rng
                .coin()
                .then(|| rng.range(1, u64::from(MAX_CROP_PIXELS)) as u32),
        },
        _ => Crop::Sized {
            width: random_extent(rng),
            height: random_extent(rng),
            gravity: rng.coin().then(|| {
                rng.pick(&[
                    Gravity::Auto,
                    Gravity::BottomRight,
                    Gravity::Point {
                        x_milli: 125,
                        y_milli: 1000,
                    },
                ])
            }),
        },
    })
}

fn random_spec(rng: &mut Rng) -> TransformSpec {
    let mut spec = random_spec_raw(rng);
    normalise(&mut spec);
    // `trim` is edges or border, never both.
    if spec.trim_border.is_some() && matches!(spec.crop, Some(Crop::Edges { .. })) {
        spec.crop = None;
    }
    spec
}

fn random_spec_raw(rng: &mut Rng) -> TransformSpec {
    TransformSpec {
        width: rng.coin().then(|| rng.range(1, 12000) as u32),
        height: rng.coin().then(|| rng.range(1, 12000) as u32),
        dpr_centi: if rng.coin() {
            100
        } else {
            rng.range(100, 400) as u16
        },
        fit: rng.pick(&[
            Fit::ScaleDown,
            Fit::Contain,
            Fit::Cover,
            Fit::Crop,
            Fit::Pad,
            Fit::Squeeze,
        ]),
        gravity: if rng.below(3) == 0 {
            Gravity::Point {
                x_milli: rng.range(0, 1000) as u16,
                y_milli: rng.range(0, 1000) as u16,
            }
        } else {
            rng.pick(&[
                Gravity::Auto,
                Gravity::Center,
                Gravity::Top,
                Gravity::Bottom,
                Gravity::Left,
                Gravity::Right,
                Gravity::TopLeft,
                Gravity::TopRight,
                Gravity::BottomLeft,
                Gravity::BottomRight,
            ])
        },
        quality: rng.coin().then(|| rng.range(1, 100) as u8),
        format: rng.pick(&[
            FormatRequest::Original,
            FormatRequest::Auto,
            FormatRequest::Fixed(OutputFormat::Jpeg),
            FormatRequest::Fixed(OutputFormat::Png),
            FormatRequest::Fixed(OutputFormat::Webp),
            FormatRequest::Fixed(OutputFormat::Avif),
            FormatRequest::Json,
        ]),
        background: rng.coin().then(|| {
            let v = rng.next().to_le_bytes();
            Rgba([v[0], v[1], v[2], if rng.coin() { 255 } else { v[3] }])
        }),
        blur_deci: rng.coin().then(|| rng.range(10, 2500) as u16),
        sharpen_deci: rng.coin().then(|| rng.range(1, 100) as u16),
        rotate: rng.pick(&[None, Some(90), Some(180), Some(270)]),
        flip: rng.pick(&[Flip::None, Flip::Horizontal, Flip::Vertical, Flip::Both]),
        grayscale: rng.coin(),
        metadata: rng.pick(&[Metadata::None, Metadata::Copyright, Metadata::Keep]),
        anim: rng.coin(),
        compression_fast: rng.coin(),
        onerror_redirect: rng.coin(),
        slow_quality: rng.coin().then(|| rng.range(1, 100) as u8),
        cachebuster: rng
            .coin()
            .then(|| format!("v{}.{}_x-", rng.below(1000), rng.below(9))),
        watermark: rng.coin().then(|| Watermark {
            name: format!("mark-{}", rng.below(100)),
            opacity_centi: rng.coin().then(|| rng.range(0, 100) as u8),
            position: rng.coin().then(|| {
                if rng.below(4) == 0 {
                    WatermarkPosition::Tile
                } else {
                    let point = Gravity::Point {
                        x_milli: rng.range(0, 1000) as u16,
                        y_milli: rng.range(0, 1000) as u16,
                    };
                    WatermarkPosition::At(rng.pick(&[
                        Gravity::Center,
                        Gravity::BottomRight,
                        Gravity::Top,
                        point,
                    ]))
                }
            }),
            offset: rng
                .coin()
                .then(|| (rng.range(0, 10000) as u16, rng.range(0, 10000) as u16)),
            scale_centi: rng.coin().then(|| rng.range(1, 100) as u8),
        }),
        fit_across: rng
            .coin()
            .then(|| rng.pick(&[Fit::ScaleDown, Fit::Contain, Fit::Pad, Fit::Cover])),
        crop: random_crop(rng),
        trim_border: random_border(rng),
        brightness_centi: random_factor(rng, 1),
        contrast_centi: random_factor(rng, 1),
        gamma_centi: random_factor(rng, 1),
        saturation_centi: random_factor(rng, 0),
        border: rng.coin().then(|| Border {
            colour: rng.coin().then(|| {
                let v = rng.next().to_le_bytes();
                Rgba([v[0], v[1], v[2], if rng.coin() { 255 } else { v[3] }])
            }),
            top: rng.range(1, 1000) as u16,
            right: rng.range(0, 1000) as u16,
            bottom: if rng.coin() {
                7
            } else {
                rng.range(0, 1000) as u16
            },
            left: rng.range(0, 1000) as u16,
        }),
    }
}

/// A tone factor in hundredths, never 100 (unchanged), at least `lo`.
fn random_factor(rng: &mut Rng, lo: u64) -> Option<u16> {
    rng.coin()
        .then(|| rng.range(lo, 1000) as u16)
        .filter(|&c| c != 100)
}

fn random_border(rng: &mut Rng) -> Option<BorderTrim> {
    rng.coin().then(|| BorderTrim {
        colour: match rng.below(3) {
            0 => BorderColour::TopLeft,
            1 => BorderColour::BottomRight,
            _ => {
                let v = rng.next().to_le_bytes();
                BorderColour::Rgba(Rgba([v[0], v[1], v[2], v[3]]))
            }
        },
        tolerance: rng.range(0, 510) as u16,
        keep: if rng.coin() {
            0
        } else {
            rng.range(1, 100_000) as u32
        },
    })
}

#[test]
fn canonical_round_trips_random_specs() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..5000 {
        let spec = random_spec(&mut rng);
        let canonical = spec.canonical();
        if spec == TransformSpec::default() {
            assert_eq!(canonical, "");
            continue;
        }
        assert_eq!(parse_options(&canonical), Ok(spec.clone()), "{canonical}");
    }
}

#[test]
fn trim_names_edges_or_a_rectangle_and_crop_a_sized_region() {
    assert_eq!(
        ok("trim=10;20;30;40").crop,
        Some(Crop::Edges {
            top: 10,
            right: 20,
            bottom: 30,
            left: 40
        })
    );
    assert_eq!(
        ok("trim.left=5,trim.width=100").crop,
        Some(Crop::Rect {
            left: 5,
            top: 0,
            width: Some(100),
            height: None
        })
    );
    assert_eq!(
        ok("crop=0.5x200,crop.gravity=top-left").crop,
        Some(Crop::Sized {
            width: Extent::Milli(500),
            height: Extent::Pixels(200),
            gravity: Some(Gravity::TopLeft)
        })
    );
    // Order does not matter, and a region of the whole image is none at all.
    assert_eq!(
        ok("crop.gravity=bottom,crop=10x0").crop,
        ok("crop=10x0,crop.gravity=bottom").crop
    );
    assert_eq!(ok("trim=0;0;0;0,width=10"), ok("width=10"));
    assert_eq!(ok("crop=0x0,crop.gravity=top,width=10"), ok("width=10"));
    assert_eq!(ok("trim.left=0,width=10"), ok("width=10"));
    assert_eq!(
        ok("fit=cover,fit.across=cover,width=10"),
        ok("fit=cover,width=10")
    );
    assert_eq!(
        ok("fit=crop,fit.across=scale-down").canonical(),
        "fit=crop,fit.across=scale-down"
    );
    // A fraction that rounds to 1 stays a fraction (999), never one pixel.
    assert_eq!(
        ok("crop=0.9999x0.0001").crop,
        Some(Crop::Sized {
            width: Extent::Milli(999),
            height: Extent::Milli(1),
            gravity: None
        })
    );
}

#[test]
fn border_takes_a_colour_and_one_width_or_four() {
    let b = |s: &str| ok(s).border.map(|b| (b.colour, b.sides()));
    let red = Some(Rgba([255, 0, 0, 255]));
    assert_eq!(b("border=color:red;width:10"), Some((red, [10; 4])));
    assert_eq!(
        b("border=top:1;right:2;bottom:3;left:4"),
        Some((None, [1, 2, 3, 4]))
    );
    assert_eq!(
        b("border=width:5;left:0;color:rgba(0,0,0,0.5)"),
        Some((Some(Rgba([0, 0, 0, 128])), [5, 5, 5, 0]))
    );
    assert_eq!(ok("border=width:0,width=9"), ok("width=9"));
    assert_eq!(
        ok("border=left:3;color:#00ff00;top:3;right:3;bottom:3").canonical(),
        "border=color:#00ff00;width:3"
    );
    for bad in [
        "border=10",
        "border=width:1001",
        "border=color:red;color:blue;width:1",
        "border=width:1;width:2",
        "border=top:x",
        "border=side:1",
    ] {
        assert!(err(bad).starts_with("border"), "{bad}");
    }
}

#[test]
fn tone_factors_follow_cloudflare() {
    let s = ok("brightness=1.5,contrast=0.25,gamma=10,saturation=0");
    assert_eq!(
        (
            s.brightness_centi,
            s.contrast_centi,
            s.gamma_centi,
            s.saturation_centi
        ),
        (Some(150), Some(25), Some(1000), Some(0))
    );
    assert_eq!(
        s.canonical(),
        "brightness=1.5,contrast=0.25,gamma=10,saturation=0"
    );
    // 1 is unchanged; 0 is ignored except for saturation.
    assert_eq!(ok("brightness=1,contrast=0,gamma=0,width=5"), ok("width=5"));
    for bad in ["brightness=10.01", "gamma=-1", "saturation=x", "contrast="] {
        assert!(
            err(bad).starts_with(bad.split('=').next().unwrap()),
            "{bad}"
        );
    }
}

#[test]
fn trim_border_and_its_settings() {
    let default = BorderTrim {
        colour: BorderColour::TopLeft,
        tolerance: BorderTrim::DEFAULT_TOLERANCE,
        keep: 0,
    };
    assert_eq!(ok("trim=border").trim_border, Some(default));
    let s =
        ok("trim.border.keep=4,trim=border,trim.border.color=bottom-right,trim.border.tolerance=0");
    assert_eq!(
        s.trim_border,
        Some(BorderTrim {
            colour: BorderColour::BottomRight,
            tolerance: 0,
            keep: 4
        })
    );
    assert_eq!(
        s.canonical(),
        "trim=border,trim.border.color=bottom-right,trim.border.tolerance=0,trim.border.keep=4"
    );
    assert_eq!(
        ok("trim.border.color=white").trim_border.map(|b| b.colour),
        Some(BorderColour::Rgba(Rgba([255, 255, 255, 255])))
    );
    // With a rectangle or a sized crop, both apply; with edges it is a mix-up.
    let s = ok("trim=border,trim.left=5");
    assert!(s.trim_border.is_some() && s.crop.is_some());
    assert!(ok("crop=10x10,trim=border").trim_border.is_some());
    assert!(err("trim=1;1;1;1,trim.border.keep=1").contains("trim=border"));
    assert!(err("trim.border.keep=1,trim=1;1;1;1").contains("trim=border"));
    assert!(err("trim.border.tolerance=511").starts_with("trim.border.tolerance"));
    assert!(err("trim.border.color=nope").starts_with("trim.border.color"));
    // A URL's own trim replaces a preset's, whichever kind either is.
    let presets = |name: &str| match name {
        "edges" => Some("trim=1;2;3;4"),
        "border" => Some("trim=border"),
        _ => None,
    };
    let s = parse_options_with("preset=edges,trim=border", &presets)
        .unwrap()
        .spec;
    assert_eq!((s.crop, s.trim_border), (None, Some(default)));
    let s = parse_options_with("preset=edges,trim.border.keep=2", &presets)
        .unwrap()
        .spec;
    assert_eq!((s.crop, s.trim_border.map(|b| b.keep)), (None, Some(2)));
    let s = parse_options_with("preset=border,trim=0;0;5;0", &presets)
        .unwrap()
        .spec;
    assert!(s.trim_border.is_none() && s.crop.is_some());
}

#[test]
fn region_options_refuse_bad_values_and_mixtures() {
    for bad in [
        "trim=1;2;3",
        "trim=1;2;3;4;5",
        "trim=borders",
        "trim=-1;0;0;0",
        "trim=100001;0;0;0",
        "trim.width=0",
        "trim.left=x",
        "crop=10",
        "crop=1.5x10",
        "crop=100001x1",
        "crop=x",
        "crop.gravity=sideways",
        "fit.across=fill",
    ] {
        let msg = err(bad);
        let key = bad.split('=').next().unwrap();
        assert!(msg.starts_with(key), "{bad}: {msg}");
    }
    for mixed in [
        "trim=1;1;1;1,trim.left=2",
        "trim.top=1,crop=10x10",
        "crop.gravity=top,trim=1;1;1;1",
    ] {
        assert!(err(mixed).contains("use one"), "{mixed}");
    }
    // A URL's own region replaces a preset's.
    let presets = |name: &str| (name == "p").then_some("trim=1;2;3;4,width=50");
    let parsed = parse_options_with("preset=p,trim.left=7", &presets).unwrap();
    assert_eq!(
        parsed.spec.crop,
        Some(Crop::Rect {
            left: 7,
            top: 0,
            width: None,
            height: None
        })
    );
}

/// Writes a spec the way a person might: random aliases, order, spacing and spellings.
fn scrambled_options(spec: &TransformSpec, rng: &mut Rng) -> String {
    let canonical = spec.canonical();
    let mut items: Vec<String> = canonical
        .split_terminator(',')
        .map(|item| {
            let (key, value) = item.split_once('=').unwrap_or((item, ""));
            let key = match key {
                "width" if rng.coin() => "w",
                "height" if rng.coin() => "h",
                "quality" if rng.coin() => "q",
                "format" if rng.coin() => "f",
                k => k,
            };
            let value = match (key, value) {
                ("flip", "hv") if rng.coin() => "vh".to_string(),
                ("format" | "f", "jpeg") if rng.coin() => "jpg".to_string(),
                ("grayscale", "true") if rng.coin() => return "grayscale".to_string(),
                ("dpr" | "blur" | "sharpen", v) if rng.coin() => {
                    if v.contains('.') {
                        format!("{v}0")
                    } else {
                        format!("{v}.0")
                    }
                }
                (_, v) => v.to_string(),
            };
            let pad = |rng: &mut Rng| if rng.coin() { " " } else { "" };
            format!(
                "{}{key}{}={}{value}{}",
                pad(rng),
                pad(rng),
                pad(rng),
                pad(rng)
            )
        })
        .collect();
    if spec.dpr_centi == 100 && rng.coin() {
        items.push("dpr=1".into());
    }
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i as u64 + 1) as usize);
    }
    items.join(",")
}

#[test]
fn scrambled_spellings_parse_to_the_same_spec() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for _ in 0..3000 {
        let spec = random_spec(&mut rng);
        if spec == TransformSpec::default() {
            continue;
        }
        let options = scrambled_options(&spec, &mut rng);
        assert_eq!(parse_options(&options), Ok(spec.clone()), "{options}");
    }
}

#[test]
fn garbage_never_panics() {
    const ALPHABET: &[u8] = b"=,,==()#.x0123456789 abcdefghijklmnopqrstuvwxyz-%\t";
    const WORDS: &[&str] = &[
        "width",
        "w",
        "height",
        "dpr",
        "fit",
        "gravity",
        "quality",
        "format",
        "background",
        "blur",
        "sharpen",
        "rotate",
        "flip",
        "grayscale",
        "metadata",
        "anim",
        "trim",
        "trim.left",
        "trim.height",
        "crop",
        "crop.gravity",
        "fit.across",
        "border",
        "trim.border.color",
        "trim.border.keep",
        "brightness",
        "saturation",
        "border",
        "color:",
        ";",
        "rgb(",
        "rgba(",
        "#",
        "%23",
        "0.5x0.5",
        "1.",
        ".",
        "\u{e9}",
        "\u{1F600}",
        "\0",
    ];
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for round in 0..20_000 {
        let len = rng.below(48) as usize;
        let mut s = String::new();
        for _ in 0..len {
            match round % 3 {
                0 => s.push(char::from(rng.below(128) as u8)),
                1 => s.push(char::from(rng.pick(ALPHABET))),
                _ if rng.below(3) == 0 => s.push_str(rng.pick(WORDS)),
                _ => s.push(char::from(rng.pick(ALPHABET))),
            }
        }
        match parse_options(&s) {
            // Whatever parsed must canonicalise to something that parses back the same.
            Ok(spec) if spec != TransformSpec::default() => {
                assert_eq!(parse_options(&spec.canonical()), Ok(spec), "{s:?}");
            }
            Ok(_) => {}
            // Fixed text plus at most a 35-character snippet of input.
            Err(SpecError(msg)) => assert!(msg.len() <= 200, "{msg}"),
        }
    }
}

#[test]
fn accept_header() {
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    assert_eq!(
        Accepts::from_accept_header(chrome),
        Accepts {
            avif: true,
            webp: true
        }
    );
    let safari_old = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5";
    assert_eq!(
        Accepts::from_accept_header(safari_old),
        Accepts {
            avif: false,
            webp: true
        }
    );
    assert_eq!(
        Accepts::from_accept_header("image/*,*/*"),
        Accepts::default()
    );
    assert_eq!(Accepts::from_accept_header(""), Accepts::default());
    assert_eq!(
        Accepts::from_accept_header("Image/AVIF ; Q=0.5 , image/webp;q=0"),
        Accepts {
            avif: true,
            webp: false
        }
    );
    assert_eq!(
        Accepts::from_accept_header("image/avif;q=0.000,image/webp;q=0.001"),
        Accepts {
            avif: false,
            webp: true
        }
    );
    // An explicit refusal wins over a repeat; an unreadable q is a refusal.
    assert_eq!(
        Accepts::from_accept_header("image/webp,image/webp;q=0,image/avif;q=abc"),
        Accepts::default()
    );
    assert_eq!(
        Accepts::from_accept_header("image/avif;level=1;q=1"),
        Accepts {
            avif: true,
            webp: false
        }
    );
}

#[test]
fn vary_tokens() {
    let both = Accepts {
        avif: true,
        webp: true,
    };
    let webp = Accepts {
        avif: false,
        webp: true,
    };
    let avif = Accepts {
        avif: true,
        webp: false,
    };
    assert_eq!(both.vary_token(FormatRequest::Auto), "avif");
    assert_eq!(avif.vary_token(FormatRequest::Auto), "avif");
    assert_eq!(webp.vary_token(FormatRequest::Auto), "webp");
    assert_eq!(
        Accepts::default().vary_token(FormatRequest::Auto),
        "fallback"
    );
    assert_eq!(both.vary_token(FormatRequest::Original), "");
    assert_eq!(both.vary_token(FormatRequest::Fixed(OutputFormat::Png)), "");
}

#[test]
fn watermark_names_and_adjustments_parse_and_round_trip() {
    let plain = ok("watermark=logo");
    assert_eq!(
        plain.watermark,
        Some(Watermark {
            name: "logo".into(),
            ..Watermark::default()
        })
    );
    // Adjustments before or after the name, every position form.
    let full = ok(
        "watermark.opacity=0.35,watermark=brand.v2,watermark.position=top-left,\
                   watermark.offset=12;7,watermark.scale=0.25",
    );
    assert_eq!(
        full.watermark,
        Some(Watermark {
            name: "brand.v2".into(),
            opacity_centi: Some(35),
            position: Some(WatermarkPosition::At(Gravity::TopLeft)),
            offset: Some((12, 7)),
            scale_centi: Some(25),
        })
    );
    assert_eq!(
        ok("watermark=a,watermark.position=tile,watermark.offset=5")
            .watermark
            .unwrap(),
        Watermark {
            name: "a".into(),
            position: Some(WatermarkPosition::Tile),
            offset: Some((5, 5)),
            ..Watermark::default()
        }
    );
    assert_eq!(
        ok("watermark=a,watermark.position=0.2x0.9")
            .watermark
            .unwrap()
            .position,
        Some(WatermarkPosition::At(Gravity::Point {
            x_milli: 200,
            y_milli: 900
        }))
    );
    for spec in [
        plain,
        full,
        ok("watermark=a,watermark.position=tile,watermark.offset=5"),
    ] {
        assert_eq!(ok(&spec.canonical()), spec, "{}", spec.canonical());
    }
    // Canonical order does not depend on the URL's.
    assert_eq!(
        ok("watermark.scale=0.5,watermark=x,width=10").canonical(),
        ok("width=10,watermark=x,watermark.scale=0.5").canonical()
    );
}

#[test]
fn watermark_values_out_of_range_are_refused_by_name() {
    for (input, option) in [
        ("watermark=", "watermark:"),
        ("watermark=a/b", "watermark:"),
        ("watermark=has space", "watermark:"),
        (&format!("watermark={}", "x".repeat(65)), "watermark:"),
        ("watermark=a,watermark.opacity=1.5", "watermark.opacity:"),
        ("watermark=a,watermark.opacity=-0.1", "watermark.opacity:"),
        ("watermark=a,watermark.position=auto", "watermark.position:"),
        (
            "watermark=a,watermark.position=middle",
            "watermark.position:",
        ),
        ("watermark=a,watermark.offset=10001", "watermark.offset:"),
        ("watermark=a,watermark.offset=1;2;3", "watermark.offset:"),
        ("watermark=a,watermark.scale=0", "watermark.scale:"),
        ("watermark=a,watermark.scale=1.01", "watermark.scale:"),
        ("watermark.opacity=0.5", "watermark.*:"),
        ("watermark=a,watermark=b", "watermark:"),
    ] {
        let e = err(input);
        assert!(e.starts_with(option), "{input}: {e}");
    }
}

#[test]
fn every_option_key_is_in_the_fuzz_dictionaries() {
    let keys: Vec<&str> = super::parse::keys().collect();
    assert!(keys.len() > 40 && keys.contains(&"w") && keys.contains(&"watermark.scale"));
    // `options` feeds the route and purge targets, `pipeline` the whole pipeline's option string.
    for dict in ["options", "pipeline"] {
        let tokens = crate::fuzzing::dict_tokens(dict, "=");
        let missing: Vec<&&str> = keys.iter().filter(|k| !tokens.contains(**k)).collect();
        assert!(
            missing.is_empty(),
            "fuzz/dict/{dict}.dict lacks {missing:?}: add each as \"key=\" so the fuzz targets \
             reach the option"
        );
    }
}
