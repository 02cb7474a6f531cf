// The SVG charts: a series with markers has a dot on every point (and in its legend), a
// zero-based axis starts at 0 whatever the data, and a plain series draws a line alone.
import Foundation
import Testing
import Train

@Suite struct LineChartTests {
    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }

    @Test func markersAndZeroBasedAxes() {
        let points: [(x: Double, y: Double)] = [(1, 432), (2, 440), (3, 459)]
        let plain = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: points)]).svg()
        #expect(Self.count("<circle", in: plain) == 0 && Self.count("<polyline", in: plain) == 1)
        #expect(!plain.contains("text-anchor=\"end\">0</text>"), "a y axis fitted to 432-459 has no 0 tick")

        let marked = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: points, markers: true)],
                               zeroBasedY: true).svg()
        #expect(Self.count("<circle", in: marked) == points.count + 1, "a dot per point and one in the legend")
        #expect(marked.contains("text-anchor=\"end\">0</text>"), "the zero-based y axis is labelled at 0")
        // 0 sits on the plot's bottom edge: the 0 tick's line is at the frame's lower y.
        #expect(marked.contains("y1=\"360.0\" y2=\"360.0\""), "the 0 gridline is not at the bottom of the plot")
    }
}
