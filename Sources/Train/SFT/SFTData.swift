// Conversations for chat fine-tuning, and their batches as nanochat's chat_sft makes them:
// each row of T + 1 tokens is filled with whole rendered conversations, best fit first (the
// longest in a buffer of 100 that still fits), and padded with <|bos|> when none fits; the
// targets are the next tokens where the render mask is 1 (what the assistant writes) and -1
// (ignored) elsewhere and in the padding. Conversations are taken in order and cycle.
import Corpus
import Foundation
import Tensor
import Tokenizer
import Inference

public enum SFTData {
    /// The conversations of JSONL files (one {"messages": [...]} object per line); an error
    /// names the file and line.
    public static func conversations(files: [String]) throws -> [Conversation] {
        var out: [Conversation] = []
        for file in try CorpusFile.expand(files) {
            let lines = try LineReader(path: file.path)
            while let line = try lines.next() {
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0d }) { continue }
                do {
                    let c = try Conversation(jsonLine: line)
                    _ = try c.turns()   // the order of roles, checked here to name the line
                    out.append(c)
                } catch let e as ChatError {
                    throw CorpusError(path: file.path, "line \(lines.lineNumber): \(e.message)")
                }
            }
        }
        return out
    }

    /// `perTask` conversations of each task, interleaved task by task (seeds 0, 1, ...).
    public static func synthetic(_ tasks: [ChatTask], perTask: Int) -> [Conversation] {
        (0..<perTask).flatMap { i in tasks.map { $0.conversation(seed: UInt64(i)) } }
    }

    /// `items` in an order fixed by `seed` (Fisher–Yates with the project's generator).
    public static func shuffled<T>(_ items: [T], seed: UInt64) -> [T] {
        var out = items, rng = SeededGenerator(seed: seed)
        if out.count < 2 { return out }
        for i in stride(from: out.count - 1, to: 0, by: -1) {
            out.swapAt(i, Int(rng.next() % UInt64(i + 1)))
        }
        return out
    }
}

/// Rows of packed conversations: (B, T) inputs and targets.
public struct SFTBatcher {
    let rendered: [(ids: [Int32], mask: [UInt8])]
    let batch: Int, sequence: Int, bos: Int32
    static let bufferSize = 100
    var buffer: [(ids: [Int32], mask: [UInt8])] = []
    /// Next conversation to buffer, and conversations taken into rows so far.
    public private(set) var cursor = 0, consumed = 0

    /// Renders every conversation cut to a row (T + 1 tokens).
    public init(_ conversations: [Conversation], tokenizer: Tokenizer, batch: Int, sequence: Int) throws {
        precondition(!conversations.isEmpty && batch > 0 && sequence > 0)
        rendered = try conversations.map { try tokenizer.render($0, maxTokens: sequence + 1) }
        self.batch = batch
        self.sequence = sequence
        bos = tokenizer.bosID
    }

    /// Conversations in one pass.
    public var count: Int { rendered.count }

    public mutating func next() -> (x: IndexTensor, y: IndexTensor) {
        let capacity = sequence + 1
        var xs: [Int32] = [], ys: [Int32] = []
        xs.reserveCapacity(batch * sequence)
        ys.reserveCapacity(batch * sequence)
        for _ in 0..<batch {
            var row: [Int32] = [], mask: [UInt8] = []
            var content = capacity
            while row.count < capacity {
                while buffer.count < SFTBatcher.bufferSize {
                    buffer.append(rendered[cursor])
                    cursor = (cursor + 1) % rendered.count
                }
                let room = capacity - row.count
                var best = -1, bestLength = 0
                for (i, c) in buffer.enumerated() where c.ids.count <= room && c.ids.count > bestLength {
                    best = i
                    bestLength = c.ids.count
                }
                if best >= 0 {
                    let c = buffer.remove(at: best)
                    row += c.ids
                    mask += c.mask
                    consumed += 1
                } else {
                    content = row.count
                    row += repeatElement(bos, count: room)
                    mask += repeatElement(0, count: room)
                }
            }
            for t in 0..<sequence {
                xs.append(row[t])
                // Target t is token t + 1: learned where its mask is 1 and it is not padding.
                ys.append(mask[t + 1] == 1 && t + 1 < content ? row[t + 1] : ignoreIndex)
            }
        }
        return (IndexTensor(shape: [batch, sequence], values: xs), IndexTensor(shape: [batch, sequence], values: ys))
    }
}
