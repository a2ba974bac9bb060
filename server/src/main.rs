//! songpei-server: the district sync server. It arrives with the sync protocol; until then this
//! binary only says so.

fn main() {
    println!("songpei-server: the sync server is not built yet; see README.md for the CLI demo.");
}
