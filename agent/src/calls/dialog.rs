//! The call's dialog sub-task: owns the [`dialogs::Engine`] and runs one reply stream at a
//! time, so the actor's select loop never holds a borrow of the engine.
//!
//! The actor sends [`DialogCommand`]s and receives [`DialogOutput`]s on bounded channels. An
//! interruption drops the running stream (the engine is cancel-safe: a transition and the
//! tool result that caused it apply atomically) and then trims the history to what was
//! actually played.

use dialogs::{CallerInput, Engine, ReplyEvent, TurnSettings};
use futures::StreamExt;
use tokio::sync::mpsc;

/// What the actor asks of the dialog.
#[derive(Debug, Clone, PartialEq)]
pub enum DialogCommand {
    /// Speak the flow's opener.
    Start,
    /// A caller turn.
    Turn(CallerInput),
    /// Stop the current reply; `spoken` is the part the caller heard.
    Interrupt { spoken: String },
    /// A transfer the flow asked for did not happen.
    TransferFailed,
    /// An answering machine answered: leave the flow's voicemail message and end the call.
    Voicemail,
}

/// What the dialog produces, tagged with the reply it belongs to.
#[derive(Debug)]
pub enum DialogOutput {
    /// A sentence, an action, or the turn summary of reply `reply`.
    Event { reply: u64, event: ReplyEvent },
    /// Reply `reply` is over (completed or interrupted); `settings` are those of the node the
    /// flow is now in (endpointing mode, barge-in).
    Finished { reply: u64, settings: TurnSettings },
}

/// Handle held by the actor.
pub struct Dialog {
    commands: mpsc::Sender<(u64, DialogCommand)>,
    pub outputs: mpsc::Receiver<DialogOutput>,
}

impl Dialog {
    pub fn spawn(engine: Engine) -> Self {
        let (commands_tx, commands_rx) = mpsc::channel(8);
        let (outputs_tx, outputs_rx) = mpsc::channel(32);
        tokio::spawn(run(engine, commands_rx, outputs_tx));
        Self {
            commands: commands_tx,
            outputs: outputs_rx,
        }
    }

    /// Sends a command whose outputs will carry `reply` (the call core numbers replies).
    pub async fn send(&mut self, reply: u64, command: DialogCommand) {
        let _ = self.commands.send((reply, command)).await;
    }
}

async fn run(
    mut engine: Engine,
    mut commands: mpsc::Receiver<(u64, DialogCommand)>,
    outputs: mpsc::Sender<DialogOutput>,
) {
    let mut next = commands.recv().await;
    while let Some((reply, command)) = next.take() {
        match command {
            DialogCommand::Interrupt { spoken } => {
                engine.interrupted(&spoken);
            }
            DialogCommand::Start
            | DialogCommand::Turn(_)
            | DialogCommand::TransferFailed
            | DialogCommand::Voicemail => {
                let mut stream = match command {
                    DialogCommand::Start => engine.start(),
                    DialogCommand::Turn(input) => engine.turn(input),
                    DialogCommand::Voicemail => engine.voicemail(),
                    _ => engine.transfer_failed(),
                };
                loop {
                    tokio::select! {
                        event = stream.next() => match event {
                            Some(event) => {
                                let done = matches!(event, ReplyEvent::Done(_));
                                if outputs.send(DialogOutput::Event { reply, event }).await.is_err() {
                                    return;
                                }
                                if done {
                                    break;
                                }
                            }
                            None => break,
                        },
                        // A new command mid-reply: stop this reply (dropping the stream) and
                        // handle the command next.
                        cmd = commands.recv() => {
                            next = cmd;
                            if next.is_none() {
                                return;
                            }
                            break;
                        }
                    }
                }
                drop(stream);
                let settings = engine.turn_settings();
                if outputs
                    .send(DialogOutput::Finished { reply, settings })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if next.is_none() {
            next = commands.recv().await;
        }
    }
}
