"""Storage faults: a FUSE passthrough that keeps un-fsynced writes in memory and drops them at "power
loss" (LazyFS semantics). `lazyfs` is the pure model, `fuse_ops` the filesystem, `mount` the process."""
