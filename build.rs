//! Build script: compiles the libaom shim in `csrc/` (AVIF output, `src/pipeline/avif.rs`) and
//! links libaom, found with pkg-config. libaom 3.2 or newer is needed (all-intra encoding).
//! When the static library is installed (Debian's `libaom-dev` has it) it is linked
//! statically, so the binary needs no libaom at run time; otherwise the shared one is used.

use std::path::PathBuf;

fn main() {
    for file in ["csrc/aom_still.c", "csrc/aom_decode.c", "csrc/imgate_aom.h"] {
        println!("cargo:rerun-if-changed={file}");
    }
    let aom = pkg_config::Config::new()
        .atleast_version("3.2")
        .cargo_metadata(false)
        .probe("aom")
        .unwrap_or_else(|e| {
            panic!(
                "AVIF output needs libaom 3.2 or newer with its headers \
                 (Debian/Ubuntu: apt-get install libaom-dev; `./dev` installs it): {e}"
            )
        });
    cc::Build::new()
        .files(["csrc/aom_still.c", "csrc/aom_decode.c"])
        .includes(&aom.include_paths)
        .warnings(true)
        .extra_warnings(true)
        .compile("imgate_aom");

    let libdir = pkg_config::get_variable("aom", "libdir")
        .ok()
        .map(PathBuf::from);
    match libdir.filter(|dir| dir.join("libaom.a").is_file()) {
        Some(dir) => {
            println!("cargo:rustc-link-search=native={}", dir.display());
            println!("cargo:rustc-link-lib=static=aom");
            // libaom.a's own dependencies (`pkg-config --libs --static aom`).
            println!("cargo:rustc-link-lib=m");
            println!("cargo:rustc-link-lib=pthread");
        }
        None => {
            for dir in &aom.link_paths {
                println!("cargo:rustc-link-search=native={}", dir.display());
            }
            println!("cargo:rustc-link-lib=aom");
        }
    }
}
