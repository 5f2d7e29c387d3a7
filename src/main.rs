fn main() -> std::process::ExitCode {
    syva::cli::main()
}
