// Which tokenizer goes with a checkpoint: the one `train` copies beside it (DIR/tokenizer) or
// one the user gives, checked against what the checkpoint records.
import Blocks
import Foundation
import Tokenizer

public enum CheckpointTokenizer {
    /// The tokenizer given, else the one beside the checkpoint, else nil.
    public static func find(_ checkpoint: String, given: String?) throws -> Tokenizer? {
        if let given { return try Tokenizer.load(from: given) }
        let beside = "\(checkpoint)/tokenizer"
        return FileManager.default.fileExists(atPath: "\(beside)/\(Tokenizer.ranksFile)") ? try Tokenizer.load(from: beside) : nil
    }

    /// The tokenizer identity the checkpoint's meta file of `step` records, if any.
    public static func recordedIdentity(_ dir: String, step: Int) -> String? {
        struct Recorded: Decodable {
            let tokenizerHash: String?
            enum CodingKeys: String, CodingKey { case tokenizerHash = "tokenizer_hash" }
        }
        return (try? Checkpoint.meta(Recorded.self, in: dir, step: step))?.tokenizerHash
    }

    /// The tokenizer a text command uses with a loaded checkpoint: the one given, else the one
    /// beside it, checked to have the model's vocabulary and to be the one it was trained
    /// with. `offersFlag`: the command has --tokenizer, which the error then suggests.
    public static func forText(model: GPT, checkpoint: String, step: Int, given: String?, offersFlag: Bool = true) throws -> Tokenizer {
        guard let tok = try find(checkpoint, given: given) else {
            throw TokenizerError("\(checkpoint) has no tokenizer/ directory" + (offersFlag ? "; give --tokenizer DIR" : ""))
        }
        try checkVocabulary(tok, model: model)
        try checkSame(tok, checkpoint: checkpoint, step: step, source: given ?? "\(checkpoint)/tokenizer")
        return tok
    }

    /// The tokenizer's ids must be the model's vocabulary.
    public static func checkVocabulary(_ tokenizer: Tokenizer, model: GPT) throws {
        guard tokenizer.vocabSize == model.config.vocabSize else {
            throw TokenizerError("the tokenizer has \(tokenizer.vocabSize) ids but the model's vocab_size is \(model.config.vocabSize)")
        }
    }

    /// Checks that `tokenizer` is the one the checkpoint of `step` in `dir` was trained with,
    /// when its meta file records one.
    public static func checkSame(_ tokenizer: Tokenizer, checkpoint dir: String, step: Int, source: String) throws {
        if let hash = recordedIdentity(dir, step: step), hash != tokenizer.identity {
            throw TokenizerError("\(source) (hash \(tokenizer.identity)) is another tokenizer than the one \(Checkpoint.metaPath(dir, step: step)) "
                                 + "was trained with (\(hash)), though both have \(tokenizer.vocabSize) ids")
        }
    }
}
