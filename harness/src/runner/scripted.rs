//! A scripted executor for tests of the runner (and of scenario files): a closure decides,
//! per scenario and step, what the "IUT" does — conform (answer like [`super::dry::DryRun`]),
//! report a given observation or fault, hang, answer late, or panic. Every start and step is
//! logged with the scenario seed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use mtp_protocol::cbor::Value;

use super::dry::{DryRun, DryRunExecutor};
use super::executor::*;

/// What the scripted IUT does for one step.
#[derive(Clone, Debug)]
pub enum Script {
    /// Answer exactly as the scenario expects.
    Conform,
    Report(StepReport),
    /// Never answer: the runner's timeout has to end the step.
    Hang,
    /// Answer after a delay.
    Delayed(Duration, Box<Script>),
    /// Panic with this message.
    Panic(String),
}

/// One logged call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    pub scenario_id: String,
    pub seed: u64,
    pub run_seed: u64,
    /// `None` for the scenario start.
    pub step: Option<u32>,
    pub action: Option<Action>,
}

type StepFn = dyn Fn(&ScenarioContext, &StepInput) -> Script + Send + Sync;
type StartFn = dyn Fn(&ScenarioContext) -> Result<(), StepFault> + Send + Sync;

/// The factory.
#[derive(Clone)]
pub struct Scripted {
    name: String,
    step: Arc<StepFn>,
    start: Arc<StartFn>,
    log: Arc<Mutex<Vec<Call>>>,
}

impl Scripted {
    /// A scripted IUT whose behaviour per step is `f`.
    pub fn new(
        f: impl Fn(&ScenarioContext, &StepInput) -> Script + Send + Sync + 'static,
    ) -> Scripted {
        Scripted {
            name: "scripted".into(),
            step: Arc::new(f),
            start: Arc::new(|_| Ok(())),
            log: Arc::default(),
        }
    }

    /// A conforming scripted IUT.
    pub fn conforming() -> Scripted {
        Scripted::new(|_, _| Script::Conform)
    }

    /// Decides whether a scenario starts (`Err` as the factory's start would return it).
    pub fn with_start(
        mut self,
        f: impl Fn(&ScenarioContext) -> Result<(), StepFault> + Send + Sync + 'static,
    ) -> Scripted {
        self.start = Arc::new(f);
        self
    }

    pub fn named(mut self, name: &str) -> Scripted {
        self.name = name.to_owned();
        self
    }

    /// Every start and step so far, in the order they happened.
    pub fn calls(&self) -> Vec<Call> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, c: Call) {
        if let Ok(mut l) = self.log.lock() {
            l.push(c);
        }
    }
}

/// One scenario's scripted executor.
pub struct ScriptedExecutor {
    factory: Scripted,
    ctx: ScenarioContext,
    dry: DryRunExecutor,
}

impl ExecutorFactory for Scripted {
    type Executor = ScriptedExecutor;

    fn name(&self) -> String {
        self.name.clone()
    }

    async fn start(&self, ctx: &ScenarioContext) -> Result<ScriptedExecutor, StepFault> {
        self.push(Call {
            scenario_id: ctx.scenario.id.clone(),
            seed: ctx.seed,
            run_seed: ctx.run_seed,
            step: None,
            action: None,
        });
        (self.start)(ctx)?;
        let dry = DryRun.start(ctx).await?;
        Ok(ScriptedExecutor {
            factory: self.clone(),
            ctx: ctx.clone(),
            dry,
        })
    }
}

impl StepExecutor for ScriptedExecutor {
    fn variables(&self) -> Vec<(String, Value)> {
        self.dry.variables()
    }

    async fn execute(&mut self, input: StepInput) -> StepReport {
        self.factory.push(Call {
            scenario_id: self.ctx.scenario.id.clone(),
            seed: self.ctx.seed,
            run_seed: self.ctx.run_seed,
            step: Some(input.index),
            action: Some(input.action.clone()),
        });
        let mut script = (self.factory.step)(&self.ctx, &input);
        loop {
            match script {
                Script::Conform => return self.dry.execute(input).await,
                Script::Report(r) => return r,
                Script::Hang => {
                    futures::future::pending::<()>().await;
                    return StepReport::fault(StepFault::Infrastructure("unreachable".into()));
                }
                Script::Delayed(d, next) => {
                    tokio::time::sleep(d).await;
                    script = *next;
                }
                Script::Panic(msg) => panic!("{msg}"),
            }
        }
    }

    async fn finish(self) {}
}
