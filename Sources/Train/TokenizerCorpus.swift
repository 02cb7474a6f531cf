// What `tokenizer train` reads: the documents of a corpus as `prepare` reads them, each cut to
// a cap, until a character budget, counted into the pieces BPE training merges.
import Corpus
import Foundation
import Tokenizer

public enum TokenizerCorpus {
    /// Counts the split pattern's pieces of the documents of `stream`, each cut to its first
    /// `docCap` characters (Unicode scalars), until `maxCharacters` have been counted (the
    /// batch that crosses the budget is counted whole, as nanochat's tok_train does). Batches
    /// of up to 65,536 documents are counted on all threads; `progress` is called after each.
    public static func count(_ stream: DocumentStream, maxCharacters: Int, docCap: Int,
                             progress: (BPETraining.PieceCounter) -> Void = { _ in }) throws -> BPETraining.PieceCounter {
        var counter = BPETraining.PieceCounter()
        var done = false
        while !done {
            var batch: [String] = [], characters = counter.characters
            while characters < maxCharacters && batch.count < 65_536, let d = try stream.next() {
                let scalars = d.unicodeScalars
                batch.append(scalars.count > docCap ? String(String.UnicodeScalarView(scalars.prefix(docCap))) : d)
                characters += min(scalars.count, docCap)
            }
            done = batch.isEmpty || characters >= maxCharacters
            counter.add(batch)
            progress(counter)
        }
        return counter
    }
}
