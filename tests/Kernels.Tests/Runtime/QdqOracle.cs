using Microsoft.ML.OnnxRuntime;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;
using Quantize.Kernels.Tests.Support;
using SessionOptions = Quantize.Kernels.Runtime.SessionOptions;
using Tensor = Quantize.Kernels.Runtime.Tensor;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>Runs a QDQ model with one float input in ONNX Runtime and in ours, and compares the one output.</summary>
internal static class QdqOracle
{
    /// <summary>The op types of the planned nodes, in run order.</summary>
    public static string[] PlannedOps(ModelSession session) =>
        session.PlannedNodes.Select(label => label[(label.LastIndexOf('(') + 1)..^1]).ToArray();

    /// <summary>ONNX Runtime's output "Y" (one thread), widened to double.</summary>
    public static (double[] Values, TensorElementType Type) RunOrt(byte[] model, float[] x, int[] shape)
    {
        using var session = OrtOracle.Session(model);
        using var input = OrtValue.CreateTensorValueFromMemory(x, shape.Select(d => (long)d).ToArray());
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, ["X"], [input], ["Y"]);
        var y = outputs[0];
        return y.GetTensorTypeAndShape().ElementDataType switch
        {
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.UInt8 => (y.GetTensorDataAsSpan<byte>().ToArray().Select(v => (double)v).ToArray(), TensorElementType.UInt8),
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Int8 => (y.GetTensorDataAsSpan<sbyte>().ToArray().Select(v => (double)v).ToArray(), TensorElementType.Int8),
            Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.Float => (y.GetTensorDataAsSpan<float>().ToArray().Select(v => (double)v).ToArray(), TensorElementType.Float32),
            var other => throw new InvalidOperationException($"Unexpected output type {other}."),
        };
    }

    /// <summary>Our output "Y", widened to double.</summary>
    public static (double[] Values, TensorElementType Type) Run(ModelSession session, float[] x, int[] shape)
    {
        var y = session.Run(new Dictionary<string, Tensor> { ["X"] = Tensor.Create(x, shape) })["Y"];
        return y.ElementType switch
        {
            TensorElementType.UInt8 => (y.ToArray<byte>().Select(v => (double)v).ToArray(), y.ElementType),
            TensorElementType.Int8 => (y.ToArray<sbyte>().Select(v => (double)v).ToArray(), y.ElementType),
            TensorElementType.Float32 => (y.ToArray<float>().Select(v => (double)v).ToArray(), y.ElementType),
            var other => throw new InvalidOperationException($"Unexpected output type {other}."),
        };
    }

    /// <summary>
    /// Loads <paramref name="model"/> with integer kernels on 1 and 2 threads (identical outputs required), checks the planned
    /// op types, and compares with ONNX Runtime: 8-bit outputs within one quantization step, float outputs within
    /// <paramref name="floatTolerance"/> of the largest magnitude. ONNX Runtime runs <paramref name="oracleModel"/> when given
    /// (an equivalent model), else the same one. Returns how many 8-bit values differ by one.
    /// </summary>
    public static int Compare(byte[] model, float[] x, int[] shape, string[] expectedOps, double floatTolerance = 1e-5, bool integerKernels = true,
        byte[]? oracleModel = null)
    {
        var expected = RunOrt(oracleModel ?? model, x, shape);
        double[]? first = null;
        foreach (int threads in new[] { 1, 2 })
        {
            using var ours = ModelSession.Load(model, "qdq.onnx", new SessionOptions { Threads = threads, UseIntegerKernels = integerKernels });
            Assert.Equal(expectedOps, PlannedOps(ours));
            var actual = Run(ours, x, shape);
            Assert.Equal(expected.Type, actual.Type);
            Assert.Equal(expected.Values.Length, actual.Values.Length);
            if (first is null) first = actual.Values;
            else Assert.Equal(first, actual.Values);
        }
        if (expected.Type == TensorElementType.Float32)
        {
            double scale = Math.Max(1e-6, expected.Values.Max(Math.Abs));
            double worst = expected.Values.Zip(first!, (e, a) => Math.Abs(e - a)).Max();
            Assert.True(worst <= floatTolerance * scale, $"max |error| {worst} exceeds {floatTolerance} x {scale}");
            return 0;
        }
        // A meaningful comparison: the outputs spread over many quantization steps, not saturated into a few.
        int distinct = first!.Distinct().Count();
        Assert.True(distinct >= Math.Min(20, first!.Length / 4), $"only {distinct} distinct output values");
        TestContext.Current.TestOutputHelper?.WriteLine($"{distinct} distinct values, {first.Count(v => v == first.Min() || v == first.Max())} at the extremes of {first.Length}");
        int offByOne = 0;
        for (int i = 0; i < expected.Values.Length; i++)
        {
            double difference = Math.Abs(expected.Values[i] - first![i]);
            Assert.True(difference <= 1, $"element {i}: ours {first[i]}, ONNX Runtime {expected.Values[i]}");
            if (difference != 0) offByOne++;
        }
        return offByOne;
    }
}
