fn main() {
    std::process::exit(gafix::app::main());
}
