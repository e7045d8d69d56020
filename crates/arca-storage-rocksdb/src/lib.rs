//! arca-storage-rocksdb
