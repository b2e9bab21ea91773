//! `loadgen`: drives an adaptivemsg server with a fixed workload (work in progress).

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    eprintln!("loadgen: not implemented yet");
    std::process::exit(2);
}
