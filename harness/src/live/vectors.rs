//! `check_vectors` against the IUT: the corpus vectors put to the IUT's codec actions
//! (`codec_encode`, `codec_parse`, `codec_sign`, `codec_verify`) by
//! [`crate::vectors::iut_check`], through the live control channel; the checker decides
//! what is right.

use std::time::Duration;

use mtp_protocol::cbor::Value;

use super::control::{CallError, ControlChannel};
use crate::runner::{Observation, StepFault, StepReport};
use crate::scenario::VectorOp;
use crate::vectors::iut_check::{self, CheckStatus, ControlInvoker, InvokeError};

/// The live control channel as the checker's invoker.
pub struct Invoker {
    pub control: ControlChannel,
    pub timeout: Duration,
}

impl ControlInvoker for Invoker {
    fn invoke(
        &mut self,
        action: &str,
        args: Value,
    ) -> impl std::future::Future<Output = Result<Value, InvokeError>> + Send {
        let control = self.control.clone();
        let timeout = self.timeout;
        let action = action.to_owned();
        async move {
            control
                .invoke(&action, &args, timeout)
                .await
                .map_err(|e| match e {
                    CallError::Transport(m) => InvokeError::transport(m),
                    CallError::Action(a) => InvokeError {
                        kind: a.kind,
                        code: a.code,
                        message: a.message,
                    },
                })
        }
    }
}

/// Runs the vector checks of `family` (`ids`; empty = all) with `operations` (empty =
/// all). Checks of actions or codec types the IUT does not implement are not counted.
pub async fn check(
    control: &ControlChannel,
    timeout: Duration,
    family: &str,
    ids: &[String],
    operations: &[VectorOp],
) -> StepReport {
    let ops: Vec<VectorOp> = if operations.is_empty() {
        VectorOp::ALL.to_vec()
    } else {
        operations.to_vec()
    };
    let mut inv = Invoker {
        control: control.clone(),
        timeout,
    };
    match iut_check::check_iut(&mut inv, family, ids, &ops).await {
        Ok(checks) => {
            let (passed, failed, _) = iut_check::summary(&checks);
            let failures = checks
                .iter()
                .filter(|c| c.status == CheckStatus::Failed)
                .map(ToString::to_string)
                .collect();
            StepReport::observed(Observation::Vectors {
                checked: u32::try_from(passed + failed).unwrap_or(u32::MAX),
                failures,
            })
        }
        Err(e) => StepReport::fault(StepFault::Infrastructure(format!(
            "check_vectors `{family}`: {e}"
        ))),
    }
}
