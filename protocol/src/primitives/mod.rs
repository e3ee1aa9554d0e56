//! The four MTP primitives (SPEC II, BIND VII) and the object machinery shared by every
//! protocol object (PROFILE G-02, G-03, G-13, G-25, G-26, G-27).

pub mod common;
pub mod json;
pub mod offer;
pub mod receipt;
pub mod request;
pub mod terms;

pub use common::{
    AgentSignature, CborObject, MultiSigned, Number, ObjectError, Participant, PriceSpec,
    PriceUnit, Role, Signature, Signed, SingleSigned, ValidationError, ValidationErrorKind,
};
pub use offer::Offer;
pub use receipt::Receipt;
pub use request::Request;
pub use terms::Terms;

#[cfg(test)]
mod tests;
