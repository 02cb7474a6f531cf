// optim_S.safetensors (SPEC §3.4): the optimisers' state, so a resumed run continues bit for
// bit. Tensors `muon.momentum.<param>`, `adamw.m.<param>`, `adamw.v.<param>`; the AdamW step
// count rides in the metadata.
import Blocks
import Foundation
import Tensor

public enum OptimizerState {
    /// Writes the state of `trainer`'s optimisers to `path`, atomically. With the state
    /// sharded over ranks every rank must call it: the owners send their parts to rank 0,
    /// which writes the one consolidated file (the same file one process writes).
    public static func save(_ trainer: Trainer, to path: String) throws {
        trainer.settleWeights()   // every rank: the checkpoint's weights are whole everywhere
        let rank = trainer.world?.rank ?? 0
        var tensors: [(String, Tensor)] = []
        func add(_ name: String, _ state: Tensor, parameter: Tensor, owner: Int) {
            guard let world = trainer.world, owner != 0 else {
                if rank == 0 { tensors.append((name, state)) }
                return
            }
            if rank == owner {
                world.send(state.data(Float.self), count: state.count, to: 0)
            } else if rank == 0 {
                let received = Tensor(zeros: parameter.shape)
                world.receive(received.data(Float.self), count: received.count, from: owner)
                tensors.append((name, received))
            }
        }
        for (i, name) in trainer.muonNames.enumerated() {
            add("muon.momentum.\(name)", trainer.muon.buffers[i], parameter: trainer.muon.parameters[i], owner: trainer.muonOwners[i])
        }
        for (i, name) in trainer.adamNames.enumerated() {
            add("adamw.m.\(name)", trainer.adam.m[i], parameter: trainer.adam.parameters[i], owner: trainer.adamOwners[i])
            add("adamw.v.\(name)", trainer.adam.v[i], parameter: trainer.adam.parameters[i], owner: trainer.adamOwners[i])
        }
        guard rank == 0 else { return }
        try Safetensors.write(tensors, metadata: ["adamw_step": String(trainer.adam.step)], to: path)
    }

    /// Restores `trainer`'s optimiser state from `path`; every tensor must be there with the
    /// parameter's shape. Errors name the file and the tensor.
    public static func load(into trainer: Trainer, from path: String) throws {
        try FolderFile.requireInside(path)
        let (tensors, metadata) = try Safetensors.read(path)
        let byName = Dictionary(tensors, uniquingKeysWith: { a, _ in a })
        // Every rank reads the whole file and keeps the parts it owns.
        func restore(_ key: String, into target: Tensor, of parameter: Tensor, owned: Bool) throws {
            guard let t = byName[key] else { throw TensorFileError(path: path, tensor: key, "missing") }
            guard t.shape == parameter.shape, t.dtype == .float32 else {
                throw TensorFileError(path: path, tensor: key, "shape \(t.shape) \(t.dtype), expected \(parameter.shape) float32")
            }
            guard owned else { return }
            if let i = Safetensors.firstNonFinite(t) {
                throw TensorFileError(path: path, tensor: key, "element \(i) is not finite (NaN or Inf)")
            }
            target.data(Float.self).update(from: t.data(Float.self), count: t.count)
        }
        let (muon, adam) = (trainer.muon, trainer.adam)
        for (i, name) in trainer.muonNames.enumerated() {
            try restore("muon.momentum.\(name)", into: muon.buffers[i], of: muon.parameters[i], owned: muon.owned[i])
        }
        for (i, name) in trainer.adamNames.enumerated() {
            try restore("adamw.m.\(name)", into: adam.m[i], of: adam.parameters[i], owned: adam.owned[i])
            try restore("adamw.v.\(name)", into: adam.v[i], of: adam.parameters[i], owned: adam.owned[i])
        }
        guard let step = metadata["adamw_step"].flatMap(Int.init), step >= 0 else {
            throw TensorFileError(path: path, "no adamw_step (a count of 0 or more) in the metadata: not an optimiser state file")
        }
        let expected = 2 * trainer.adamNames.count + trainer.muonNames.count
        guard tensors.count == expected else {
            throw TensorFileError(path: path, "\(tensors.count) tensors, the model's optimisers have \(expected)")
        }
        trainer.adam.step = step
    }
}
