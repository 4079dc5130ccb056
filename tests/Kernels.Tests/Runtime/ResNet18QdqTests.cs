using System.Diagnostics;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Kernels.Tests.Support;
using Quantize.Tests;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>
/// ResNet18 statically quantized to QDQ (by <see cref="ResNetQdqConverter"/>, calibrated on four real images) runs on
/// the fused integer nodes and gives ONNX Runtime's features on other images; the timing of the float and QDQ models
/// on our runtime is printed, not asserted.
/// </summary>
public class ResNet18QdqTests
{
    private const string Input = "Input247", Output = "Pooling395_Output_0";
    private static readonly long[] Shape = [1, 3, 224, 224];

    [Fact]
    public void Qdq_resnet18_runs_on_integer_kernels_and_matches_onnx_runtime()
    {
        var log = TestContext.Current.TestOutputHelper;
        string path = RealModels.ResNet18Path;
        // The base photos (not their mirrored or cropped variants): four to calibrate, two others to compare on.
        var images = Directory.GetDirectories(SharedData.Require("calibration/resnet18")).Order(StringComparer.Ordinal)
            .Where((_, i) => i % 4 == 0).Select(d => RealModelRuntimeTests.ReadTensor(Path.Combine(d, "Input247.pb")).ToArray<float>()).ToArray();
        Assert.True(images.Length >= 6, "expected at least six base images");

        var folded = ResNetQdqConverter.FoldBatchNormalization(ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)));
        var ranges = ResNetQdqConverter.Calibrate(folded, Input, images.Take(4), Shape);
        byte[] qdq = ResNetQdqConverter.Quantize(folded, ranges).ToByteArray();

        using var ours = ModelSession.Load(qdq, "resnet18.qdq.onnx", new SessionOptions { Threads = 1 });
        string[] ops = QdqOracle.PlannedOps(ours);
        log?.WriteLine($"planned: {string.Join(", ", ops.GroupBy(o => o).Select(g => $"{g.Count()} {g.Key}"))}");
        Assert.Equal(folded.Graph.Node.Count(n => n.OpType == "Conv"), ops.Count(o => o == "QuantizedConv"));
        Assert.Equal(folded.Graph.Node.Count(n => n.OpType == "Add"), ops.Count(o => o == "QuantizedAdd"));
        Assert.Equal(["QuantizedMaxPool"], ops.Where(o => o.Contains("MaxPool", StringComparison.Ordinal)));
        Assert.DoesNotContain("Conv", ops);
        Assert.DoesNotContain("Add", ops);

        using var ort = OrtOracle.Session(qdq);
        using var floatOrt = OrtOracle.Session(path);
        foreach (float[] image in images.Skip(4).Take(2))
        {
            float[] mine = ours.Run(new Dictionary<string, Tensor> { [Input] = Tensor.Create(image, 1, 3, 224, 224) })[Output].ToArray<float>();
            float[] expected = RunOrt(ort, image);
            double cosine = Cosine(expected, mine);
            log?.WriteLine($"cosine to ONNX Runtime on the QDQ model {cosine:F6}; to the float model {Cosine(RunOrt(floatOrt, image), mine):F6}");
            Assert.True(cosine >= 0.999, $"cosine {cosine} to ONNX Runtime's features");
        }

        using var floatSession = ModelSession.Load(path, new SessionOptions { Threads = 1 });
        var feed = new Dictionary<string, Tensor> { [Input] = Tensor.Create(images[4], 1, 3, 224, 224) };
        var (floatMs, qdqMs) = InterleavedMedians(floatSession, ours, feed);
        log?.WriteLine($"median of 20 runs each (interleaved), 1 thread: float {floatMs:F1} ms, QDQ {qdqMs:F1} ms (QDQ runs {floatMs / qdqMs:F2}x as fast)");
        var byOp = new Dictionary<string, double>();
        ours.NodeTimer = (label, ms) =>
        {
            string op = label[(label.LastIndexOf('(') + 1)..^1];
            byOp[op] = byOp.GetValueOrDefault(op) + ms / 10;
        };
        for (int i = 0; i < 10; i++) ours.Run(feed);
        ours.NodeTimer = null;
        log?.WriteLine("QDQ time by op (mean ms): " + string.Join(", ", byOp.OrderByDescending(p => p.Value).Select(p => $"{p.Key} {p.Value:F2}")));
    }

    private static float[] RunOrt(InferenceSession session, float[] image)
    {
        using var value = OrtValue.CreateTensorValueFromMemory(image, Shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [Input], [value], [Output]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>Median run times of two sessions, their runs alternating so that a busy machine slows both alike.</summary>
    private static (double First, double Second) InterleavedMedians(ModelSession first, ModelSession second, Dictionary<string, Tensor> feed)
    {
        for (int i = 0; i < 5; i++)
        {
            first.Run(feed);
            second.Run(feed);
        }
        var times = (First: new List<double>(), Second: new List<double>());
        for (int i = 0; i < 20; i++)
        {
            long start = Stopwatch.GetTimestamp();
            first.Run(feed);
            times.First.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            start = Stopwatch.GetTimestamp();
            second.Run(feed);
            times.Second.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        static double Median(List<double> values)
        {
            values.Sort();
            return (values[values.Count / 2 - 1] + values[values.Count / 2]) / 2;
        }
        return (Median(times.First), Median(times.Second));
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += (double)a[i] * b[i];
            na += (double)a[i] * a[i];
            nb += (double)b[i] * b[i];
        }
        return dot / Math.Sqrt(na * nb);
    }
}
