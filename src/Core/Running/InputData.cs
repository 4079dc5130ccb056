using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>Model inputs for running and benchmarking: read from a folder of tensor files, or generated from the declared types.</summary>
public static class InputData
{
    /// <summary>
    /// Reads one ONNX TensorProto file per input from <paramref name="folder"/>: <c>NAME.pb</c> (as in
    /// ../shared/calibration) or, failing that, <c>input_N.pb</c> in input order (as in the ONNX node tests).
    /// </summary>
    /// <exception cref="FileNotFoundException">An input has no file.</exception>
    public static Dictionary<string, Tensor> Read(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        var reader = new OnnxModel(new ModelProto { Graph = new GraphProto() }, folder, folder);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < inputs.Count; i++)
        {
            string named = Path.Combine(folder, inputs[i].Name + ".pb"), numbered = Path.Combine(folder, $"input_{i}.pb");
            string path = File.Exists(named) ? named : File.Exists(numbered) ? numbered
                : throw new FileNotFoundException($"{folder}: no file for input '{inputs[i].Name}' (looked for {inputs[i].Name}.pb and input_{i}.pb).");
            TensorProto proto;
            try
            {
                proto = TensorProto.Parser.ParseFrom(File.ReadAllBytes(path));
            }
            catch (Google.Protobuf.InvalidProtocolBufferException e)
            {
                throw new InvalidModelException(path, $"is not a serialized ONNX TensorProto: {e.Message}", e);
            }
            result[inputs[i].Name] = ToTensor(reader.ReadTensor(proto));
        }
        return result;
    }

    /// <summary>
    /// Inputs made up from the declared types: symbolic or unknown dimensions become <paramref name="symbolicSize"/>,
    /// floats are uniform in [-1, 1), integers are 1 (a valid token id, index or mask), booleans true.
    /// Deterministic (fixed seed).
    /// </summary>
    public static Dictionary<string, Tensor> Generate(IReadOnlyList<ValueInfo> inputs, int symbolicSize = 1)
    {
        var random = new Random(12345);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            int[] shape = input.Shape?.Select(d => d.Value is > 0 ? (int)d.Value.Value : symbolicSize).ToArray() ?? [symbolicSize];
            int count = shape.Aggregate(1, (a, b) => a * b);
            result[input.Name] = input.ElementType switch
            {
                TensorElementType.Float32 => Tensor.Create(Enumerable.Range(0, count).Select(_ => random.NextSingle() * 2 - 1).ToArray(), shape),
                TensorElementType.Float64 => Tensor.Create(Enumerable.Range(0, count).Select(_ => random.NextDouble() * 2 - 1).ToArray(), shape),
                TensorElementType.Float16 => Tensor.Create(Enumerable.Range(0, count).Select(_ => (Half)(random.NextSingle() * 2 - 1)).ToArray(), shape),
                TensorElementType.Int64 => Tensor.Create(Enumerable.Repeat(1L, count).ToArray(), shape),
                TensorElementType.Int32 => Tensor.Create(Enumerable.Repeat(1, count).ToArray(), shape),
                TensorElementType.UInt8 => Tensor.Create(Enumerable.Repeat((byte)1, count).ToArray(), shape),
                TensorElementType.Int8 => Tensor.Create(Enumerable.Repeat((sbyte)1, count).ToArray(), shape),
                TensorElementType.Bool => Tensor.Create(Enumerable.Repeat(true, count).ToArray(), shape),
                var other => throw new NotSupportedException($"Cannot generate inputs of {other.DisplayName()} ('{input.Name}'); give them with --data."),
            };
        }
        return result;
    }

    internal static Tensor ToTensor(TensorData data)
    {
        int[] shape = data.Shape.ToArray().Select(d => checked((int)d)).ToArray();
        return data.ElementType switch
        {
            TensorElementType.Float32 => Tensor.Create(data.ToArray<float>(), shape),
            TensorElementType.Float64 => Tensor.Create(data.ToArray<double>(), shape),
            TensorElementType.Float16 => Tensor.Create(data.ToArray<Half>(), shape),
            TensorElementType.Int64 => Tensor.Create(data.ToArray<long>(), shape),
            TensorElementType.Int32 => Tensor.Create(data.ToArray<int>(), shape),
            TensorElementType.Int8 => Tensor.Create(data.ToArray<sbyte>(), shape),
            TensorElementType.UInt8 => Tensor.Create(data.Bytes.ToArray(), shape),
            TensorElementType.Bool => Tensor.Create(data.ToArray<bool>(), shape),
            var other => throw new NotSupportedException($"Input tensors of {other.DisplayName()} are not supported."),
        };
    }
}
