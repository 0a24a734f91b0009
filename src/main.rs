use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: rendering allocates many small strings on several
/// threads, where glibc grows per-thread arenas page by page (thousands of mprotect calls and
/// page faults for one render of kolla's tree).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `kolla-build report SUMMARY.json -o FILE.html` (config::report_cli says why only first).
    let run: Box<dyn FnOnce() -> ExitCode + std::panic::UnwindSafe> =
        match kolla_build::config::report_cli::parse_if_report(&args) {
            Some(parsed) => {
                let report = parsed.unwrap_or_else(|e| e.exit());
                Box::new(move || kolla_build::app::run_report(report))
            }
            None => {
                let cli = kolla_build::compat::args::parse_from(args).unwrap_or_else(|e| e.exit());
                Box::new(move || kolla_build::app::run(cli))
            }
        };
    // A panic is a bug of ours: the standard hook prints where, and the exit code says
    // "internal" (2) rather than Rust's 101, as `--help` documents.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        eprintln!(
            "error: internal error (a bug in kolla-build); please report it with the command line"
        );
    }));
    match std::panic::catch_unwind(run) {
        Ok(code) => code,
        Err(_) => ExitCode::from(kolla_build::common::error::INTERNAL_EXIT),
    }
}
