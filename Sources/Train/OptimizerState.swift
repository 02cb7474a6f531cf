// optim_S.safetensors (SPEC §3.4): the optimisers' state, so a resumed run continues bit for
// bit. Tensors `muon.momentum.<param>`, `adamw.m.<param>`, `adamw.v.<param>`; the AdamW step
// count rides in the metadata.
import Blocks
import Foundation
import Tensor

public enum OptimizerState {
    /// Writes the state of `trainer`'s optimisers to `path`, atomically.
    public static func save(_ trainer: Trainer, to path: String) throws {
        var tensors: [(String, Tensor)] = []
        for (name, buffer) in zip(trainer.muonNames, trainer.muon.buffers) { tensors.append(("muon.momentum.\(name)", buffer)) }
        for (i, name) in trainer.adamNames.enumerated() {
            tensors.append(("adamw.m.\(name)", trainer.adam.m[i]))
            tensors.append(("adamw.v.\(name)", trainer.adam.v[i]))
        }
        try Safetensors.write(tensors, metadata: ["adamw_step": String(trainer.adam.step)], to: path)
    }

    /// Restores `trainer`'s optimiser state from `path`; every tensor must be there with the
    /// parameter's shape. Errors name the file and the tensor.
    public static func load(into trainer: Trainer, from path: String) throws {
        let (tensors, metadata) = try Safetensors.read(path)
        let byName = Dictionary(tensors, uniquingKeysWith: { a, _ in a })
        func restore(_ key: String, into target: Tensor) throws {
            guard let t = byName[key] else { throw TensorFileError(path: path, tensor: key, "missing") }
            guard t.shape == target.shape, t.dtype == .float32 else {
                throw TensorFileError(path: path, tensor: key, "shape \(t.shape) \(t.dtype), expected \(target.shape) float32")
            }
            if let i = Safetensors.firstNonFinite(t) {
                throw TensorFileError(path: path, tensor: key, "element \(i) is not finite (NaN or Inf)")
            }
            target.data(Float.self).update(from: t.data(Float.self), count: t.count)
        }
        for (name, buffer) in zip(trainer.muonNames, trainer.muon.buffers) { try restore("muon.momentum.\(name)", into: buffer) }
        for (i, name) in trainer.adamNames.enumerated() {
            try restore("adamw.m.\(name)", into: trainer.adam.m[i])
            try restore("adamw.v.\(name)", into: trainer.adam.v[i])
        }
        guard let step = metadata["adamw_step"].flatMap(Int.init), step >= 0 else {
            throw TensorFileError(path: path, "no adamw_step in the metadata: not an optimiser state file")
        }
        let expected = 2 * trainer.adamNames.count + trainer.muonNames.count
        guard tensors.count == expected else {
            throw TensorFileError(path: path, "\(tensors.count) tensors, the model's optimisers have \(expected)")
        }
        trainer.adam.step = step
    }
}
