using Quantize.Core.Calibration;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Runtime;

namespace Quantize.Tool;

/// <summary>Model inputs for compare, run and bench: from a data folder, or generated from the declared types.</summary>
internal static class InputSets
{
    /// <summary>How <see cref="InputData.Generate"/> makes up inputs, for the messages that say so.</summary>
    public const string GeneratedDescription = "generated from the declared input types (fixed seed, symbolic dimensions 1)";

    /// <summary>
    /// The samples in <paramref name="folder"/>: one sample's tensor files (<c>NAME.pb</c>, <c>NAME.npy</c> or <c>input_N.pb</c>
    /// per input), or a set of samples as calibration data is laid out (sample folders, <c>.npz</c> files, or <c>.npy</c> files for
    /// a one-input model; see <see cref="CalibrationData.FromFolder(string, IReadOnlyList{ValueInfo}, int)"/>).
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static IEnumerable<IReadOnlyDictionary<string, Tensor>> Open(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: the data folder does not exist.");
        if (IsOneSample(folder, inputs)) return [ReadOneSample(folder, inputs)];
        return CalibrationData.FromFolder(folder, inputs).Select(s => (IReadOnlyDictionary<string, Tensor>)s.Inputs);
    }

    /// <summary>The first sample in <paramref name="folder"/> (see <see cref="Open"/>).</summary>
    public static IReadOnlyDictionary<string, Tensor> First(string folder, IReadOnlyList<ValueInfo> inputs) =>
        Open(folder, inputs).FirstOrDefault() ?? throw new InvalidDataException($"{folder}: holds no samples.");

    /// <summary>Inputs made up from the declared types (deterministic).</summary>
    public static IReadOnlyDictionary<string, Tensor> Generate(IReadOnlyList<ValueInfo> inputs) => InputData.Generate(inputs);

    /// <summary>A folder without sub-folders or .npz files whose tensor files are named after the inputs is one sample.</summary>
    private static bool IsOneSample(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        if (Directory.GetDirectories(folder).Any(d => !Path.GetFileName(d).StartsWith('.'))) return false;
        if (Directory.EnumerateFiles(folder, "*.npz").Any()) return false;
        var npy = Directory.EnumerateFiles(folder, "*.npy").Select(Path.GetFileNameWithoutExtension).ToList();
        return npy.Count == 0 || npy.All(n => inputs.Any(i => i.Name == n));
    }

    private static Dictionary<string, Tensor> ReadOneSample(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        for (int i = 0; i < inputs.Count; i++)
        {
            string name = inputs[i].Name;
            string[] candidates = [Path.Combine(folder, name + ".pb"), Path.Combine(folder, name + ".npy"), Path.Combine(folder, $"input_{i}.pb")];
            string path = candidates.FirstOrDefault(File.Exists)
                ?? throw new FileNotFoundException($"{folder}: no file for input '{name}' (looked for {name}.pb, {name}.npy and input_{i}.pb).");
            result[name] = TensorFiles.Read(path);
        }
        return result;
    }

    /// <summary>
    /// The inputs as a batch of <paramref name="batch"/>: each tensor repeated along its first axis. The model must
    /// accept it: a fixed first dimension other than the result is a usage error.
    /// </summary>
    public static IReadOnlyDictionary<string, Tensor> Batch(IReadOnlyDictionary<string, Tensor> inputs, IReadOnlyList<ValueInfo> declared, int batch)
    {
        if (batch == 1) return inputs;
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in inputs)
        {
            if (tensor.Rank == 0) throw new UsageException($"--batch {batch}: input '{name}' is a scalar and cannot be batched.");
            int first = tensor.Shape[0] * batch;
            var info = declared.FirstOrDefault(i => i.Name == name);
            if (info?.Shape is { Count: > 0 } shape && shape[0].Value is long fixedSize && fixedSize > 0 && fixedSize != first)
                throw new UsageException($"--batch {batch}: input '{name}' has a fixed first dimension of {fixedSize} ({info}); this model runs batches of {fixedSize} only.");
            result[name] = Repeat(tensor, batch);
        }
        return result;
    }

    private static Tensor Repeat(Tensor tensor, int times) => tensor.ElementType switch
    {
        TensorElementType.Float32 => Repeat<float>(tensor, times),
        TensorElementType.Float64 => Repeat<double>(tensor, times),
        TensorElementType.Float16 => Repeat<Half>(tensor, times),
        TensorElementType.Int64 => Repeat<long>(tensor, times),
        TensorElementType.Int32 => Repeat<int>(tensor, times),
        TensorElementType.Int8 => Repeat<sbyte>(tensor, times),
        TensorElementType.UInt8 => Repeat<byte>(tensor, times),
        TensorElementType.Bool => Repeat<bool>(tensor, times),
        var other => throw new UsageException($"--batch: inputs of {other.DisplayName()} cannot be batched."),
    };

    private static Tensor Repeat<T>(Tensor tensor, int times)
    {
        var one = tensor.AsSpan<T>();
        var data = new T[one.Length * times];
        for (int i = 0; i < times; i++) one.CopyTo(data.AsSpan(i * one.Length));
        int[] shape = tensor.Shape.ToArray();
        shape[0] *= times;
        return Tensor.Create(data, tensor.ElementType, shape);
    }
}
