// The SVG charts: a series with markers has a dot on every point (and in its legend), a
// zero-based axis starts at 0 whatever the data, a plain series draws a line alone, and
// everything drawn lies on the canvas, the data inside the plot.
import Foundation
import Testing
import Train

@Suite struct LineChartTests {
    static func count(_ needle: String, in text: String) -> Int { text.components(separatedBy: needle).count - 1 }
    /// The text of an SVG element's attribute `name` (` name="…"`), if it has one.
    static func attributeText(_ name: String, _ line: String) -> String? {
        line.components(separatedBy: " \(name)=\"").dropFirst().first?.components(separatedBy: "\"").first
    }
    /// The number in an SVG element's attribute `name`, if it has one.
    static func attribute(_ name: String, _ line: String) -> Double? { attributeText(name, line).flatMap(Double.init) }
    /// The text of an SVG element written on one line: what lies between its first `>` and the `<` after it.
    static func text(_ line: String) -> String? {
        line.components(separatedBy: ">").dropFirst().first?.components(separatedBy: "<").first
    }

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

    /// A band is one shaded polygon, up along the highs and back along the lows, and the axis
    /// grows to hold it; one x alone gets a short bar.
    @Test func bandsShadeTheSpread() throws {
        let points: [(x: Double, y: Double)] = [(0, 100), (10, 100)]
        let band: [(x: Double, low: Double, high: Double)] = [(0, 50), (10, 80)].map { ($0.0, $0.1, 200) }
        let svg = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: points, band: band)]).svg()
        #expect(Self.count("<polygon", in: svg) == 1 && svg.contains("fill-opacity=\"0.18\""))
        // The first points="..." after each element's name.
        func pointsOf(_ element: String) -> String? {
            let parts = svg.components(separatedBy: "<\(element)")
            guard parts.count > 1 else { return nil }
            let after = parts[1].components(separatedBy: "points=\"")
            return after.count > 1 ? after[1].components(separatedBy: "\"").first : nil
        }
        let polygon = try #require(pointsOf("polygon"))
        let corners = polygon.split(separator: " ").map { $0.split(separator: ",").compactMap { Double($0) } }
        #expect(corners.count == 4)
        // Plot y runs down: the highs (200) above the line, the lows (50, 80) below it.
        let line = try #require(pointsOf("polyline")?.split(separator: " ").first?.split(separator: ",").compactMap { Double($0) })
        let lineY = line[1], ys = corners.map { $0[1] }
        #expect(ys[0] < lineY && ys[1] < lineY)
        #expect(ys[2] > lineY && ys[3] > lineY)
        #expect(corners[2][0] > corners[3][0], "the lows come back from the right")
        #expect(svg.contains(">200</text>"), "the y axis reaches the band's top")
        let single = LineChart(title: "t", xLabel: "x", yLabel: "y",
                               series: [.init(name: "a", points: [(5, 10)], band: [(5, 8, 12)])]).svg()
        #expect(Self.count("<polygon", in: single) == 1)
    }

    /// Ticks are round values inside the axes: y from 2.13 to 3.87 (5% padding each side)
    /// gets steps of 0.5 starting at the first multiple inside, 2.5, 3 and 3.5, each drawn
    /// within the plot; x from 0 to 100 gets steps of 20.
    @Test func ticksAreRoundValuesInsideTheAxes() throws {
        let points: [(x: Double, y: Double)] = [(0, 3.87), (50, 2.9), (100, 2.13)]
        let svg = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: points)]).svg()
        let lines = svg.split(separator: "\n").map(String.init)
        let frame = try #require(lines.first { $0.contains("stroke=\"#333\"") })
        let (top, height) = (try #require(Self.attribute("y", frame)), try #require(Self.attribute("height", frame)))
        let yLabels = lines.filter { $0.contains("text-anchor=\"end\"") }
        #expect(yLabels.compactMap(Self.text) == ["2.5", "3", "3.5"])
        let gridYs = lines.filter { $0.contains("stroke=\"#e5e5e5\"") }.compactMap { Self.attribute("y1", $0) }
        #expect(gridYs.count == 3 && gridYs.allSatisfy { $0 >= top && $0 <= top + height }, "\(gridYs) outside \(top)...\(top + height)")
        let xLabels = lines.filter { $0.contains("text-anchor=\"middle\"") }.compactMap(Self.text).filter { Double($0) != nil }
        #expect(xLabels == ["0", "20", "40", "60", "80", "100"])
        // Labels as a reader writes them: 0 and 1 as such, halves with one decimal, and from
        // 10^4 up in short scientific form.
        func yLabelsOf(_ points: [(x: Double, y: Double)]) -> [String] {
            LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: points)], zeroBasedY: true).svg()
                .split(separator: "\n").map(String.init).filter { $0.contains("text-anchor=\"end\"") }.compactMap(Self.text)
        }
        #expect(yLabelsOf([(0, 0.2), (1, 2)]) == ["0", "0.5", "1", "1.5", "2"])
        #expect(yLabelsOf([(0, 1000), (1, 40_000)]) == ["0", "1e+04", "2e+04", "3e+04", "4e+04"])
    }

    /// A series of one x (a sweep of one size, a run of one step) is drawn inside the plot:
    /// in the middle of a log axis, within a linear one, which starts at 0.
    @Test func oneXIsDrawnInsideThePlot() throws {
        for logX in [false, true] {
            let svg = LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: [(5, 10)])], logX: logX).svg()
            let lines = svg.split(separator: "\n").map(String.init)
            let frame = try #require(lines.first { $0.contains("stroke=\"#333\"") })
            let (left, width) = (try #require(Self.attribute("x", frame)), try #require(Self.attribute("width", frame)))
            let dot = try #require(lines.first { $0.hasPrefix("<circle") }.flatMap { Self.attribute("cx", $0) })
            #expect(dot > left && dot < left + width, "logX \(logX): the point at \(dot), the plot \(left)...\(left + width)")
            if logX { #expect(abs(dot - (left + width / 2)) < 0.1, "one x on a log axis sits in the middle") }
        }
    }

    /// The plot keeps fixed margins for the labels (70 left, 20 right, 40 top, 60 bottom) at any
    /// canvas size, and everything drawn lies on the canvas: the data, bands and markers inside
    /// the plot's frame, the grid, ticks and legend within the canvas.
    @Test func everythingDrawnLiesOnTheCanvas() throws {
        let up: [(x: Double, y: Double)] = [(1, 2), (10, 5), (100, 4), (1000, 9)]
        let band: [(x: Double, low: Double, high: Double)] = up.map { ($0.x, $0.y - 1, $0.y + 3) }
        for (logX, size) in [(false, (720.0, 420.0)), (true, (600.0, 300.0)), (false, (1000.0, 250.0))] {
            var chart = LineChart(title: "t", xLabel: "x", yLabel: "y",
                                  series: [.init(name: "a", points: up, markers: true, band: band),
                                           .init(name: "b", points: up.map { ($0.x, 12 - $0.y) })], logX: logX)
            (chart.width, chart.height) = size
            let lines = chart.svg().split(separator: "\n").map(String.init)
            let frame = try #require(lines.first { $0.contains("stroke=\"#333\"") })
            let box = try ["x", "y", "width", "height"].map { try #require(Self.attribute($0, frame)) }
            #expect(box == [70, 40, size.0 - 90, size.1 - 100], "\(size): the plot's frame \(box)")
            func inside(_ x: Double, _ y: Double, _ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double) -> Bool {
                x >= x0 - 0.05 && x <= x1 + 0.05 && y >= y0 - 0.05 && y <= y1 + 0.05
            }
            var drawn = 0
            for line in lines {
                // Data: polyline and polygon points, and the dots; all within the frame.
                if let points = Self.attributeText("points", line) {
                    for pair in points.split(separator: " ") {
                        let xy = pair.split(separator: ",").compactMap { Double($0) }
                        #expect(xy.count == 2 && inside(xy[0], xy[1], box[0], box[1], box[0] + box[2], box[1] + box[3]), "\(size): \(pair) off the plot")
                        drawn += 1
                    }
                }
                for (xName, yName) in [("x", "y"), ("x1", "y1"), ("x2", "y2"), ("cx", "cy")] {
                    guard let x = Self.attribute(xName, line), let y = Self.attribute(yName, line) else { continue }
                    #expect(inside(x, y, 0, 0, size.0, size.1), "\(size): \(line) off the canvas")
                }
            }
            #expect(drawn == 4 + 8 + 4, "\(size): two lines of four points and a band of eight corners")
            // The legend: one row per series, in order down the plot from its top, 16 apart.
            let legend = try ["a", "b"].map { name in
                try #require(lines.first { $0.hasPrefix("<text") && $0.hasSuffix(">\(name)</text>") }.flatMap { Self.attribute("y", $0) })
            }
            #expect(legend[0] > box[1] && legend[1] == legend[0] + 16, "\(size): legend rows at \(legend), the plot's top \(box[1])")
        }
    }

    /// Names are escaped everywhere they are written; each series takes the next palette
    /// colour (the ninth the first again) in its line and legend; the band's legend row comes
    /// after the series'; a log axis is labelled at the data's x values when there are at
    /// most 12 of them, else at the powers of ten.
    @Test func legendColoursAndLogAxisLabels() throws {
        let points: [(x: Double, y: Double)] = [(1, 1), (2, 3)]
        let series = (0..<9).map { LineChart.Series(name: "s\($0)", points: points.map { ($0.x, $0.y + 0.1 * Double($0.x)) }) }
        var named = series
        named[0] = .init(name: "a<b & c>", points: points, band: [(1, 0.5, 1.5), (2, 2.5, 3.5)])
        let svg = LineChart(title: "loss <d4> & d6", xLabel: "x<", yLabel: "y&", series: named).svg()
        let lines = svg.split(separator: "\n").map(String.init)
        #expect(lines.contains { $0.hasSuffix(">loss &lt;d4&gt; &amp; d6</text>") && $0.contains("text-anchor=\"middle\" font-size=\"15\"") })
        #expect(lines.contains { $0.hasSuffix(">x&lt;</text>") } && lines.contains { $0.hasSuffix(">y&amp;</text>") })
        #expect(!svg.contains("<b") && !svg.contains("& c"), "a raw name leaked into the SVG")
        let polylines = lines.filter { $0.hasPrefix("<polyline") }
        let strokes = polylines.compactMap { Self.attributeText("stroke", $0) }
        let palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
        #expect(strokes == (0..<9).map { palette[$0 % 8] })
        // Legend rows: the nine series, then the band's words, 16 px apart.
        let rows = lines.filter { $0.hasPrefix("<text x=\"575.0\"") }
        #expect(rows.compactMap(Self.text)
                == ["a&lt;b &amp; c&gt;"] + (1..<9).map { "s\($0)" } + ["shaded: slowest to fastest run"])
        let ys = rows.compactMap { Self.attribute("y", $0) }
        #expect(ys.count == 10 && zip(ys, ys.dropFirst()).allSatisfy { $1 - $0 == 16 } && ys[0] == 54)

        func xLabels(_ xs: [Double]) -> [String] {
            LineChart(title: "t", xLabel: "x", yLabel: "y", series: [.init(name: "a", points: xs.map { ($0, 1) })], logX: true).svg()
                .split(separator: "\n").map(String.init).filter { $0.contains("text-anchor=\"middle\">") && !$0.contains("font-size") }
                .compactMap(Self.text).filter { $0 != "x" && $0 != "y" }
        }
        let twelve = (0..<12).map { pow(2, Double($0)) }
        #expect(xLabels(twelve) == twelve.map { String(format: "%g", $0) })
        #expect(xLabels((0..<13).map { pow(2, Double($0)) }) == ["1", "10", "100", "1000"])
    }
}
