//! The work each benchmark step does, shared by the durable handlers and the plain baseline so
//! that the two differ only in durability.

/// One step's work: a little CPU on the input, as a real step's call to some API would return a
/// small JSON value.
pub fn step_work(input: u64, step: u32) -> u64 {
    let mut x = input ^ u64::from(step).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for _ in 0..64 {
        x = x.rotate_left(7).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 31);
    }
    x
}
