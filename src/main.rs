fn main() {
    // Before any thread exists: see src/malloc.rs.
    printcam::malloc::bound_arenas();
    std::process::exit(printcam::cli::main(std::env::args_os().collect()));
}
