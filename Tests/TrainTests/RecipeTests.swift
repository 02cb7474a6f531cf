// The learning-rate and momentum schedules, and how the optimiser state is sharded over ranks.
import Testing
import Train

@Suite struct RecipeTests {
    @Test func schedules() {
        #expect(Schedule.lrMultiplier(step: 0, total: 100) == 1)
        #expect(Schedule.lrMultiplier(step: 80, total: 100) == 1)
        #expect(abs(Schedule.lrMultiplier(step: 90, total: 100) - 0.5) < 1e-12)
        #expect(Schedule.lrMultiplier(step: 100, total: 100) == 0)
        #expect(abs(Schedule.lrMultiplier(step: 90, total: 100, finalFraction: 0.1) - 0.55) < 1e-12)
        #expect(abs(Schedule.lrMultiplier(step: 4, total: 100, warmupRatio: 0.1) - 0.5) < 1e-12)
        #expect(Schedule.muonMomentum(step: 0) == 0.85 && Schedule.muonMomentum(step: 300) == 0.95)
        #expect(abs(Schedule.muonMomentum(step: 150) - 0.9) < 1e-12)
    }

    /// Sharding the optimiser over ranks: largest first to the least-loaded rank, lowest
    /// rank on ties; one rank owns everything.
    @Test func ownersBalanceTheState() {
        #expect(World.owners(sizes: [10, 1, 5, 5], ranks: 2) == [0, 0, 1, 1])
        #expect(World.owners(sizes: [3, 3, 3], ranks: 1) == [0, 0, 0])
        #expect(World.owners(sizes: [4, 4, 4, 4], ranks: 3) == [0, 1, 2, 0])
    }
}
