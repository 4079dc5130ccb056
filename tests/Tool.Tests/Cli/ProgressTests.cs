using System.Text.Json;
using Quantize.Core.Quantization;

namespace Quantize.Tool.Tests.Cli;

/// <summary>Progress on stderr: plain lines when redirected, a bar only on a terminal, nothing when quiet.</summary>
public sealed class ProgressTests : IDisposable
{
    private readonly ToolTestModels _models = new();

    public void Dispose() => _models.Dispose();

    private static void Feed(IProgress<QuantizationProgress> progress)
    {
        for (int i = 0; i <= 20; i++) progress.Report(new QuantizationProgress("calibrating", i, 20));
        progress.Report(new QuantizationProgress("quantizing", 0, null));
        progress.Report(new QuantizationProgress("evaluating", 0, null));
    }

    [Fact]
    public void Lines_show_each_stage_and_each_tenth_without_control_characters()
    {
        var writer = new StringWriter { NewLine = "\n" };
        using (var progress = new ConsoleProgress(writer, ProgressStyle.Lines)) Feed(progress);
        string[] lines = writer.ToString().TrimEnd('\n').Split('\n');
        Assert.Equal(13, lines.Length); // calibrating at 0/20 and at each tenth up to 20/20, then two stages
        Assert.Matches(@"^\[\d\d:\d\d\] calibrating 0/20$", lines[0]);
        Assert.EndsWith("] calibrating 20/20", lines[10]);
        Assert.EndsWith("] quantizing", lines[11]);
        Assert.EndsWith("] evaluating", lines[12]);
        Assert.DoesNotContain(writer.ToString(), c => char.IsControl(c) && c != '\n');
    }

    [Fact]
    public void Lines_for_a_stage_of_unknown_length_come_at_1_2_5_10_and_so_on()
    {
        var writer = new StringWriter { NewLine = "\n" };
        using (var progress = new ConsoleProgress(writer, ProgressStyle.Lines))
        {
            for (int i = 0; i <= 120; i++) progress.Report(new QuantizationProgress("calibrating", i, null));
        }
        var counts = writer.ToString().TrimEnd('\n').Split('\n').Select(l => l[(l.IndexOf("calibrating", StringComparison.Ordinal) + 11)..].Trim()).ToArray();
        Assert.Equal(["", "1", "2", "5", "10", "20", "50", "100"], counts);
    }

    [Fact]
    public void The_bar_redraws_in_place_and_is_cleared_at_the_end()
    {
        var writer = new StringWriter { NewLine = "\n" };
        using (var progress = new ConsoleProgress(writer, ProgressStyle.Bar)) Feed(progress);
        string text = writer.ToString();
        Assert.Contains("\r[############............] calibrating 10/20", text);
        Assert.DoesNotContain('\n', text);
        Assert.Matches(@"\r +\r$", text);
    }

    [Fact]
    public void A_writer_that_is_not_the_consoles_gets_lines_and_quiet_gets_nothing()
    {
        Assert.Equal(ProgressStyle.Lines, ConsoleProgress.StyleFor(new StringWriter(), quiet: false));
        Assert.Equal(ProgressStyle.None, ConsoleProgress.StyleFor(new StringWriter(), quiet: true));
        var writer = new StringWriter();
        using (var progress = new ConsoleProgress(writer, ProgressStyle.None)) Feed(progress);
        Assert.Equal("", writer.ToString());
    }

    [Fact]
    public void Static_quantization_reports_calibration_on_stderr_and_keeps_json_on_stdout()
    {
        string model = _models.WriteClassifier(), data = _models.WriteSamples(4);
        var run = CliRun.Of(model, "--mode", "static", "--data", data, "--json", "-o", _models.Path("static.onnx"));
        Assert.True(run.ExitCode == 0, run.Stderr);
        using (JsonDocument.Parse(run.Stdout)) { }
        // The calibrator does not know the count in advance here: lines at 1, 2, 5, ... samples.
        Assert.Contains(run.StderrLines, l => l.EndsWith("] calibrating 2", StringComparison.Ordinal));
        Assert.DoesNotContain(run.StderrLines, l => l.EndsWith("] calibrating 3", StringComparison.Ordinal));
        Assert.Contains(run.StderrLines, l => l.EndsWith("] quantizing", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Stderr + run.Stdout, c => char.IsControl(c) && c != '\n');

        var quiet = CliRun.Of(model, "--mode", "static", "--data", data, "--quiet", "-o", _models.Path("quiet.onnx"));
        Assert.Equal(0, quiet.ExitCode);
        Assert.Equal("", quiet.Stderr);
        Assert.Equal("", quiet.Stdout);
    }
}
