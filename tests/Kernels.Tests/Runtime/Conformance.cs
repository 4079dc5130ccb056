using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;
using Quantize.Tests;

namespace Quantize.Kernels.Tests.Runtime;

/// <summary>The outcome of running one ONNX backend node test on our runtime.</summary>
internal enum ConformanceOutcome
{
    Passed,
    Failed,
    NotSupported,
}

internal sealed record ConformanceResult(string Name, string[] OpTypes, ConformanceOutcome Outcome, string Detail);

/// <summary>
/// Runs an ONNX backend test case (model, inputs, expected outputs from the ONNX project) on
/// <see cref="ModelSession"/> and compares as ONNX's runner does: same dtype and shape, floats within
/// rtol 1e-3 and atol 1e-7, everything else exact.
/// </summary>
internal static class Conformance
{
    public static ConformanceResult Run(string name)
    {
        string folder = NodeTestCases.Folder(name);
        var model = OnnxModel.Load(Path.Combine(folder, "model.onnx"));
        string[] ops = model.Graph.Node.Select(n => (n.Domain.Length > 0 && n.Domain != "ai.onnx" ? n.Domain + "." : "") + n.OpType).Distinct().ToArray();

        if (model.Graph.Input.Concat(model.Graph.Output).Any(v => v.Type?.ValueCase is not (TypeProto.ValueOneofCase.TensorType or null)))
            return new(name, ops, ConformanceOutcome.NotSupported, "sequence, map or optional values (the runtime runs tensors only)");

        ModelSession session;
        try
        {
            session = ModelSession.Create(model, new SessionOptions { Threads = 1 });
        }
        catch (UnsupportedModelException e)
        {
            return new(name, ops, ConformanceOutcome.NotSupported, e.Problem);
        }

        var data = Path.Combine(folder, "test_data_set_0");
        var inputs = new Dictionary<string, Tensor>();
        try
        {
            for (int i = 0; i < session.Inputs.Count; i++)
            {
                var stored = TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(data, $"input_{i}.pb")));
                inputs[session.Inputs[i].Name] = ToRuntime(model, stored);
            }
        }
        catch (NotSupportedException e)
        {
            return new(name, ops, ConformanceOutcome.NotSupported, $"input type: {e.Message}");
        }

        IReadOnlyDictionary<string, Tensor> outputs;
        try
        {
            outputs = session.Run(inputs);
        }
        catch (NotSupportedException e)
        {
            return new(name, ops, ConformanceOutcome.NotSupported, e.Message);
        }
        catch (Exception e)
        {
            return new(name, ops, ConformanceOutcome.Failed, $"{e.GetType().Name}: {e.Message}");
        }

        for (int i = 0; i < session.Outputs.Count; i++)
        {
            var stored = TensorProto.Parser.ParseFrom(File.ReadAllBytes(Path.Combine(data, $"output_{i}.pb")));
            var expected = ToRuntime(model, stored);
            var actual = outputs[session.Outputs[i].Name];
            if (Compare(expected, actual) is { } problem)
                return new(name, ops, ConformanceOutcome.Failed, $"output {i} '{session.Outputs[i].Name}': {problem}");
        }
        return new(name, ops, ConformanceOutcome.Passed, "");
    }

    private static Tensor ToRuntime(OnnxModel model, TensorProto stored) =>
        Quantize.Kernels.Runtime.TensorPool.FromStored(model.ReadTensor(stored));

    /// <summary>Null when equal under ONNX's rule, else what differs.</summary>
    internal static string? Compare(Tensor expected, Tensor actual)
    {
        if (expected.ElementType != actual.ElementType) return $"type {actual.ElementType.DisplayName()}, expected {expected.ElementType.DisplayName()}";
        if (!expected.Shape.SequenceEqual(actual.Shape)) return $"shape {Tensor.Format(actual.Shape)}, expected {Tensor.Format(expected.Shape)}";
        double[]? e = AsDoubles(expected), a = AsDoubles(actual);
        if (e is not null && a is not null)
        {
            bool floating = expected.ElementType.IsFloatingPoint();
            for (int i = 0; i < e.Length; i++)
            {
                if (double.IsNaN(e[i]) && double.IsNaN(a[i])) continue;
                bool ok = floating ? Math.Abs(a[i] - e[i]) <= 1e-7 + 1e-3 * Math.Abs(e[i]) || a[i] == e[i] : a[i] == e[i];
                if (!ok) return $"element {i} is {a[i]}, expected {e[i]}";
            }
            return null;
        }
        if (expected.ElementType == TensorElementType.String)
        {
            var es = expected.AsSpan<string>();
            var acts = actual.AsSpan<string>();
            for (int i = 0; i < es.Length; i++)
            {
                if (es[i] != acts[i]) return $"element {i} is '{acts[i]}', expected '{es[i]}'";
            }
            return null;
        }
        return $"cannot compare {expected.ElementType.DisplayName()}";
    }

    private static double[]? AsDoubles(Tensor t) => t.ElementType switch
    {
        TensorElementType.Float32 => t.ToArray<float>().Select(v => (double)v).ToArray(),
        TensorElementType.Float64 => t.ToArray<double>(),
        TensorElementType.Float16 => t.ToArray<Half>().Select(v => (double)v).ToArray(),
        TensorElementType.BFloat16 => t.ToArray<ushort>().Select(v => (double)BitConverter.Int32BitsToSingle(v << 16)).ToArray(),
        TensorElementType.Int8 or TensorElementType.Int4 => t.ToArray<sbyte>().Select(v => (double)v).ToArray(),
        TensorElementType.UInt8 or TensorElementType.UInt4 => t.ToArray<byte>().Select(v => (double)v).ToArray(),
        TensorElementType.Int16 => t.ToArray<short>().Select(v => (double)v).ToArray(),
        TensorElementType.UInt16 => t.ToArray<ushort>().Select(v => (double)v).ToArray(),
        TensorElementType.Int32 => t.ToArray<int>().Select(v => (double)v).ToArray(),
        TensorElementType.UInt32 => t.ToArray<uint>().Select(v => (double)v).ToArray(),
        TensorElementType.Int64 => t.ToArray<long>().Select(v => (double)v).ToArray(),
        TensorElementType.UInt64 => t.ToArray<ulong>().Select(v => (double)v).ToArray(),
        TensorElementType.Bool => t.ToArray<bool>().Select(v => v ? 1.0 : 0.0).ToArray(),
        _ => null,
    };
}
