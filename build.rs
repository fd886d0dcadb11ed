//! Build script: compiles the libaom shim in `csrc/` (AVIF output, `src/pipeline/avif.rs`) and
//! links libaom, found with pkg-config. libaom 3.2 or newer is needed (all-intra encoding).
//! When the static library is installed (Debian's `libaom-dev` has it) it is linked
//! statically, so the binary needs no libaom at run time; otherwise the shared one is used.
//!
//! It also compiles the libheif shim (HEIC/HEIF input, `src/imaging/heic.rs`) and links
//! libheif 1.15 or newer, shared (Debian's `libheif-dev`; the binary needs `libheif1` at run
//! time, which brings the HEVC decoder, libde265).

use std::path::PathBuf;

fn main() {
    heif();
    for file in [
        "csrc/aom_still.c",
        "csrc/aom_decode.c",
        "csrc/imgate_aom.h",
        "csrc/heif_decode.c",
        "csrc/imgate_heif.h",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }
    let aom = probe("aom", "3.2", "AVIF output", "libaom-dev");
    shim(
        &["csrc/aom_still.c", "csrc/aom_decode.c"],
        &aom,
        "imgate_aom",
    );

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

/// The libheif shim, then libheif itself (shared), named after the shim so the linker keeps it.
fn heif() {
    let heif = probe("libheif", "1.15", "HEIC input", "libheif-dev");
    shim(&["csrc/heif_decode.c"], &heif, "imgate_heif");
    for dir in &heif.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &heif.libs {
        println!("cargo:rustc-link-lib={lib}");
    }
}

/// `lib` at `version` or newer, found by pkg-config (its link lines are ours to write), or a
/// build error naming the Debian package that has it.
fn probe(lib: &str, version: &str, needed_for: &str, package: &str) -> pkg_config::Library {
    pkg_config::Config::new()
        .atleast_version(version)
        .cargo_metadata(false)
        .probe(lib)
        .unwrap_or_else(|e| {
            panic!(
                "{needed_for} needs {lib} {version} or newer with its headers \
                 (Debian/Ubuntu: apt-get install {package}; `./dev` installs it): {e}"
            )
        })
}

/// Compiles a C shim of `csrc/` against `lib`'s headers, warnings on.
fn shim(files: &[&str], lib: &pkg_config::Library, name: &str) {
    cc::Build::new()
        .files(files)
        .includes(&lib.include_paths)
        .warnings(true)
        .extra_warnings(true)
        .compile(name);
}
