//! ftpnat harness (skeleton).
