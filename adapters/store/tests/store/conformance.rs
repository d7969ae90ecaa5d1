//! The conformance suite against every store: SQLite on a file, SQLite in memory,
//! PostgreSQL, and the memory store.

mod sqlite_file {
    use std::sync::Arc;

    use async_trait::async_trait;
    use switchboard_store::conformance::StoreFactory;
    use switchboard_store::{ConversationStore, SqliteStore};

    use crate::support::ScratchDir;

    /// A fresh database file per store, in a scratch directory per test.
    struct SqliteFile(ScratchDir);

    #[async_trait]
    impl StoreFactory for SqliteFile {
        async fn make(&self) -> Arc<dyn ConversationStore> {
            Arc::new(SqliteStore::open(&self.0.file()).await.unwrap())
        }
    }

    switchboard_store::conformance_tests!(SqliteFile(ScratchDir::new()));
}

mod sqlite_memory {
    use std::sync::Arc;

    use async_trait::async_trait;
    use switchboard_store::conformance::StoreFactory;
    use switchboard_store::{ConversationStore, SqliteStore};

    /// A fresh in-memory database per store.
    struct Memory;

    #[async_trait]
    impl StoreFactory for Memory {
        async fn make(&self) -> Arc<dyn ConversationStore> {
            Arc::new(SqliteStore::in_memory().await.unwrap())
        }
    }

    switchboard_store::conformance_tests!(Memory);
}

mod postgres {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use switchboard_store::conformance::StoreFactory;
    use switchboard_store::{ConversationStore, PostgresStore};
    use switchboard_testkit::PostgresServer;

    /// One PostgreSQL server per test (it starts in well under a second and is killed
    /// when the test ends, pass or fail: a server shared by the whole binary would
    /// outlive it, as statics are never dropped). The first store gets the server's
    /// `postgres` database, empty in a fresh cluster; any further one a new database.
    struct Postgres {
        server: PostgresServer,
        next: AtomicUsize,
    }

    impl Postgres {
        fn new() -> Postgres {
            Postgres {
                server: PostgresServer::start(),
                next: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait]
    impl StoreFactory for Postgres {
        async fn make(&self) -> Arc<dyn ConversationStore> {
            let url = match self.next.fetch_add(1, Ordering::Relaxed) {
                0 => self.server.url(),
                n => self.server.create_database(&format!("conformance_{n}")),
            };
            Arc::new(PostgresStore::connect(&url, 4).await.unwrap())
        }
    }

    switchboard_store::conformance_tests!(Postgres::new());
}

mod memory {
    use std::sync::Arc;

    use async_trait::async_trait;
    use switchboard_store::conformance::StoreFactory;
    use switchboard_store::{ConversationStore, MemoryStore};

    /// A fresh memory store per store.
    struct Memory;

    #[async_trait]
    impl StoreFactory for Memory {
        async fn make(&self) -> Arc<dyn ConversationStore> {
            Arc::new(MemoryStore::new())
        }
    }

    switchboard_store::conformance_tests!(Memory);
}
