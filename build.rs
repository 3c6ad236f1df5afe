//! Build script: one linker flag for the browser build (issue 11 item 4). `.cargo/config.toml`
//! strips the wasm32 module's symbols (`-C strip=symbols`: the 7.9 MB function-name section);
//! the linker's strip also drops the `target_features` section, from which wasm-bindgen reads
//! which WebAssembly features the module uses, so it is kept. (Here and not in the rustflags:
//! a link argument of this crate only, so changing it rebuilds no dependency.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg=--keep-section=target_features");
    }
}
