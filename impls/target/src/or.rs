//! A store given at run time, or the app's compiled-in fallback: one type, so the app's `start`
//! is monomorphised once.

/// The store the user gave (`Left`) or the app's fallback (`Right`), as
/// [`Target::kv_ro_or`](crate::Target::kv_ro_or) returns it: the signature crate's
/// [`morgana::Either`], whose every method is a `match`. Where the target has no stores (`Left`
/// holds an [`Absent`](crate::Absent)), only the fallback's code remains.
pub type Or<G, F> = morgana::Either<G, F>;
