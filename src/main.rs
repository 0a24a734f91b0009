use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: rendering allocates many small strings on several
/// threads, where glibc grows per-thread arenas page by page (thousands of mprotect calls and
/// page faults for one render of kolla's tree).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    kolla_build::app::run(kolla_build::compat::args::parse())
}
