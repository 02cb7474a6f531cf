// Which tokenizer a command uses with a checkpoint: the one given, else the one beside it; and
// the checks that it has the model's vocabulary and is the one the checkpoint records.
import Foundation
import Blocks
import Testing
import Inference
import Tokenizer

@Suite struct CheckpointTokenizerTests {
    let tokenizer: Tokenizer
    let model: GPT

    init() throws {
        tokenizer = try Tokenizer.load(from: tokenizerFixtures + "/tokenizer")
        model = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: tokenizer.vocabSize, nLayer: 1, nHead: 1, nKVHead: 1,
                                            nEmbd: 16, blockPattern: [.transformer]), seed: 1)
    }

    /// A checkpoint directory of step 5 whose meta records `hash`, with `tokenizer` beside it.
    func checkpoint(recording hash: String?, beside: Tokenizer?) throws -> String {
        let dir = NSTemporaryDirectory() + "nanochat-ckpt-tok-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Checkpoint.save(model, step: 5, to: dir, extra: hash.map { ["tokenizer_hash": $0] } ?? [:])
        if let beside { try beside.save(to: dir + "/tokenizer") }
        return dir
    }

    func message(_ body: () throws -> Tokenizer) -> String? {
        do { _ = try body(); return nil } catch { return "\(error)" }
    }

    @Test func theTokenizerBesideOrGivenIsTheOneRecorded() throws {
        let dir = try checkpoint(recording: tokenizer.identity, beside: tokenizer)
        #expect(CheckpointTokenizer.recordedIdentity(dir, step: 5) == tokenizer.identity)
        #expect(try CheckpointTokenizer.forText(model: model, checkpoint: dir, step: 5, given: nil).identity == tokenizer.identity)
        // The one given is used, not the one beside (here made unreadable).
        try Data("not base64 ranks\n".utf8).write(to: URL(fileURLWithPath: "\(dir)/tokenizer/\(Tokenizer.ranksFile)"))
        #expect(message { try CheckpointTokenizer.forText(model: model, checkpoint: dir, step: 5, given: nil) } != nil)
        #expect(try CheckpointTokenizer.forText(model: model, checkpoint: dir, step: 5, given: tokenizerFixtures + "/tokenizer")
            .identity == tokenizer.identity)
        // A meta file without a record accepts any tokenizer of the model's size.
        let unrecorded = try checkpoint(recording: nil, beside: tokenizer)
        #expect(CheckpointTokenizer.recordedIdentity(unrecorded, step: 5) == nil)
        #expect(try CheckpointTokenizer.forText(model: model, checkpoint: unrecorded, step: 5, given: nil).vocabSize == tokenizer.vocabSize)
    }

    @Test func aMissingWrongSizedOrOtherTokenizerIsNamed() throws {
        let bare = try checkpoint(recording: tokenizer.identity, beside: nil)
        #expect(message { try CheckpointTokenizer.forText(model: model, checkpoint: bare, step: 5, given: nil) }
            == "\(bare) has no tokenizer/ directory; give --tokenizer DIR")
        #expect(message { try CheckpointTokenizer.forText(model: model, checkpoint: bare, step: 5, given: nil, offersFlag: false) }
            == "\(bare) has no tokenizer/ directory")
        // The record is checked against the tokenizer used: another identity is refused, naming both.
        let other = try checkpoint(recording: "0123456789abcdef", beside: tokenizer)
        let refused = message { try CheckpointTokenizer.forText(model: model, checkpoint: other, step: 5, given: nil) } ?? ""
        #expect(refused.hasPrefix("\(other)/tokenizer (hash \(tokenizer.identity)) is another tokenizer than the one "
                                  + "\(Checkpoint.metaPath(other, step: 5)) was trained with (0123456789abcdef)"), "\(refused)")
        // A model of another vocabulary size.
        let small = try GPT(config: ModelConfig(sequenceLen: 16, vocabSize: 300, nLayer: 1, nHead: 1, nKVHead: 1, nEmbd: 16,
                                                blockPattern: [.transformer]), seed: 1)
        #expect(message { try CheckpointTokenizer.forText(model: small, checkpoint: other, step: 5, given: nil) }
            == "the tokenizer has \(tokenizer.vocabSize) ids but the model's vocab_size is 300")
        // A tokenizer given that does not exist is named.
        #expect(message { try CheckpointTokenizer.forText(model: model, checkpoint: bare, step: 5, given: bare + "/nope") }?
            .contains("\(bare)/nope") == true)
    }
}
