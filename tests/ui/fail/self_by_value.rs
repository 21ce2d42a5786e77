use cachekit::cached;

struct Service;

impl Service {
    #[cached]
    fn consume(self, id: u64) -> u64 {
        id
    }

    #[cached]
    fn mutate(&mut self, id: u64) -> u64 {
        id
    }
}

fn main() {}
