fn main() {
    std::process::exit(printcam::cli::main(std::env::args_os().collect()));
}
