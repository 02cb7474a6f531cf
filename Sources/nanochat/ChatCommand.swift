// `nanochat chat`: talk to a checkpoint in the terminal, as nanochat's chat_cli. Replies
// stream; the conversation and its decode cache are kept between turns, so a turn prefills
// only its own tokens. /clear starts over, /quit (or end of input) leaves. --prompt answers
// one message and exits, for scripts.
import ArgumentParser
import Blocks
import Foundation
import Tensor
import Train
import Tokenizer
import Inference

struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Talk to a model in the terminal (streamed replies, the conversation kept between turns).",
        discussion: """
        Type a message and press Enter. /clear forgets the conversation, /quit leaves (as does
        end of input). With --prompt, answers one message and exits. A calculator call the
        model writes is answered as nanochat's engine answers it and shown as «expr = value».
        """
    )

    @Option(help: "Checkpoint directory (a chat fine-tuned one, from `nanochat sft`).") var checkpoint: String
    @Option(help: "Checkpoint step (default: the latest).") var step: Int?
    @Option(help: "Tokenizer directory (default: the checkpoint's tokenizer/).") var tokenizer: String?
    @Option(help: "One message to answer, then exit.") var prompt: String?
    @Option(help: "A system message, folded into the first user message.") var system: String?
    @OptionGroup var sampling: SamplingOptions
    @Option(help: "Longest reply, in tokens.") var maxTokens: Int = 512
    @Flag(help: "After each reply, print the tokens it prefilled and generated (on stderr).") var stats = false
    @OptionGroup var runOptions: RunOptions
    @OptionGroup var precision: PrecisionOptions

    func validate() throws {
        guard (1...1_000_000).contains(maxTokens) else { throw ValidationError("--max-tokens must be in 1...1000000, got \(maxTokens)") }
    }

    func run() throws {
        runOptions.apply()
        let (model, loadedStep) = try Checkpoint.load(from: checkpoint, step: step)
        precision.apply(to: model, inference: true)
        let tok = try CheckpointTokenizer.forText(model: model, checkpoint: checkpoint, step: loadedStep, given: tokenizer)
        let session = ChatSession(model: model, tokenizer: tok, sampler: sampling.sampler(defaultTemperature: 0.6),
                                  system: system, maxReplyTokens: maxTokens)
        if let prompt {
            try answer(prompt, session, interactive: false)
            return
        }
        print("nanochat chat: \(checkpoint) step \(loadedStep). /clear starts over, /quit leaves.")
        while true {
            print("\nUser: ", terminator: "")
            fflush(nil)
            guard let line = readLine(strippingNewline: true) else { print(); return }
            let text = line.trimmingCharacters(in: .whitespaces)
            if text.isEmpty { continue }
            if text == "/quit" || text == "/exit" { return }
            if text == "/clear" { session.clear(); print("(conversation cleared)"); continue }
            print("\nAssistant: ", terminator: "")
            try answer(text, session, interactive: true)
        }
    }

    /// Answers one message; a message that does not fit is said and the conversation goes on
    /// (interactive) or is the command's error (--prompt).
    func answer(_ text: String, _ session: ChatSession, interactive: Bool) throws {
        let reply: ChatSession.Reply
        do {
            reply = try session.reply(to: text) { piece in
                print(piece.shown, terminator: "")
                fflush(nil)
                return true
            }
        } catch {
            guard interactive else { throw error }
            print("(\(error))")
            return
        }
        print()
        if stats {
            FileHandle.standardError.write(Data(("[prefilled \(reply.prefilled) tokens, generated \(reply.generated), "
                + "conversation \(reply.contextLength) tokens\(reply.finished ? "" : ", stopped at --max-tokens")]\n").utf8))
        }
    }
}
