using System.Collections;
using Quantize.Core.Running;
using Quantize.Kernels.Models;
using Quantize.Kernels.Models.Onnx;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Calibration;

/// <summary>One calibration sample: a name (its folder or file, for messages) and the model inputs.</summary>
/// <param name="Name">Where the sample came from, e.g. its folder's name.</param>
/// <param name="Inputs">The model's inputs by name.</param>
public sealed record CalibrationSample(string Name, Dictionary<string, Tensor> Inputs);

/// <summary>
/// A lazy sequence of calibration samples: each is read when it is reached, so only one is in memory at a
/// time. Folder layouts (see docs/CALIBRATION.md):
/// <list type="bullet">
/// <item>a folder of sample folders, each with one file per model input named after it: <c>NAME.pb</c> (a
/// serialized ONNX TensorProto) or <c>NAME.npy</c>;</item>
/// <item>a folder of <c>.npz</c> files, one per sample, with one array per input named after it;</item>
/// <item>a folder of <c>.npy</c> files, one per sample, for models with one input.</item>
/// </list>
/// Samples come in ordinal order of their names. Every input is checked against the model's declared
/// element type and shape as it is read; a problem throws <see cref="InvalidDataException"/> naming the file.
/// </summary>
public sealed class CalibrationData : IEnumerable<CalibrationSample>
{
    private readonly IEnumerable<CalibrationSample> _samples;

    private CalibrationData(string source, int? count, IEnumerable<CalibrationSample> samples)
    {
        Source = source;
        Count = count;
        _samples = samples;
    }

    /// <summary>Where the samples come from (a folder), for messages.</summary>
    public string Source { get; }

    /// <summary>The number of samples, when known in advance (always for folders).</summary>
    public int? Count { get; }

    /// <summary>
    /// The samples in <paramref name="folder"/> for <paramref name="model"/>'s inputs (those without an
    /// initializer; inputs with one keep their default).
    /// </summary>
    /// <param name="folder">The folder of samples.</param>
    /// <param name="model">The model whose declared inputs the files must match.</param>
    /// <param name="limit">At most this many samples (the first in order); 0 means all.</param>
    /// <exception cref="InvalidDataException">The folder is missing, empty, or mixes layouts.</exception>
    public static CalibrationData FromFolder(string folder, OnnxModel model, int limit = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        return FromFolder(folder, ModelInputs(model), limit);
    }

    /// <summary>The samples in <paramref name="folder"/>, each holding <paramref name="inputs"/>.</summary>
    /// <param name="folder">The folder of samples.</param>
    /// <param name="inputs">The inputs every sample must provide, with their declared type and shape.</param>
    /// <param name="limit">At most this many samples (the first in order); 0 means all.</param>
    /// <exception cref="InvalidDataException">The folder is missing, empty, or mixes layouts.</exception>
    public static CalibrationData FromFolder(string folder, IReadOnlyList<ValueInfo> inputs, int limit = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        if (!Directory.Exists(folder))
            throw new InvalidDataException($"{folder}: the calibration data folder does not exist.");
        var inputList = inputs.ToArray();
        var folders = Directory.GetDirectories(folder).Where(d => !Path.GetFileName(d).StartsWith('.')).ToList();
        var npz = Files(folder, ".npz");
        var npy = Files(folder, ".npy");
        int layouts = (folders.Count > 0 ? 1 : 0) + (npz.Count > 0 ? 1 : 0) + (npy.Count > 0 ? 1 : 0);
        if (layouts == 0)
            throw new InvalidDataException($"{folder}: holds no calibration samples. Give a folder of sample folders (one NAME.pb or NAME.npy per input), of .npz files, or of .npy files (single-input models).");
        if (layouts > 1)
            throw new InvalidDataException($"{folder}: mixes sample folders, .npz and .npy files ({folders.Count}, {npz.Count} and {npy.Count}); keep one kind of sample per folder.");

        IEnumerable<string> names;
        Func<string, Dictionary<string, Tensor>> read;
        if (folders.Count > 0)
        {
            names = folders;
            read = path => ReadSampleFolder(path, inputList);
        }
        else if (npz.Count > 0)
        {
            names = npz;
            read = path => Checked(NumpyFiles.ReadNpz(path, inputList.Select(i => i.Name)), inputList, name => path);
        }
        else
        {
            if (inputList.Length != 1)
                throw new InvalidDataException(
                    $"{folder}: holds .npy files, one per sample, which only fits a model with one input; this one has {inputList.Length} ({string.Join(", ", inputList.Select(i => i.Name))}). Use one folder per sample or one .npz file per sample.");
            names = npy;
            read = path => Checked(new Dictionary<string, Tensor>(StringComparer.Ordinal) { [inputList[0].Name] = NumpyFiles.ReadNpy(path) }, inputList, _ => path);
        }
        var ordered = names.OrderBy(Path.GetFileName, StringComparer.Ordinal).ToList();
        if (limit > 0 && ordered.Count > limit) ordered = ordered.Take(limit).ToList();
        return new CalibrationData(folder, ordered.Count, ordered.Select(path => new CalibrationSample(Path.GetFileName(path), read(path))));
    }

    /// <summary>
    /// Samples from the caller (e.g. tokenized on the fly): enumerated lazily, once per calibration pass.
    /// They are checked by the model run, not here.
    /// </summary>
    /// <param name="samples">The samples.</param>
    /// <param name="source">A name for messages.</param>
    /// <param name="count">The number of samples, when known (for progress reports).</param>
    public static CalibrationData FromSamples(IEnumerable<CalibrationSample> samples, string source = "calibration samples", int? count = null)
    {
        ArgumentNullException.ThrowIfNull(samples);
        return new CalibrationData(source, count, samples);
    }

    /// <summary>The first <paramref name="limit"/> samples; 0 means all.</summary>
    public CalibrationData Take(int limit)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        if (limit == 0 || Count <= limit) return this;
        return new CalibrationData(Source, Count is null ? null : Math.Min(Count.Value, limit), _samples.Take(limit));
    }

    /// <inheritdoc />
    public IEnumerator<CalibrationSample> GetEnumerator() => _samples.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    /// <summary>The graph inputs without an initializer, as declared.</summary>
    internal static IReadOnlyList<ValueInfo> ModelInputs(OnnxModel model)
    {
        var initialized = model.Graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        return model.Graph.Input.Where(i => !initialized.Contains(i.Name)).Select(Describe).ToArray();
    }

    private static ValueInfo Describe(ValueInfoProto value)
    {
        if (value.Type?.TensorType is not { } tensor) return new ValueInfo(value.Name, TensorElementType.Undefined, null);
        var shape = tensor.Shape?.Dim.Select(d => d.ValueCase == TensorShapeProto.Types.Dimension.ValueOneofCase.DimValue
            ? new Dimension(d.DimValue, null)
            : new Dimension(null, d.DimParam.Length > 0 ? d.DimParam : null)).ToArray();
        return new ValueInfo(value.Name, OnnxElementTypes.ToElementType(tensor.ElemType), shape);
    }

    private static List<string> Files(string folder, string extension) =>
        Directory.GetFiles(folder).Where(f => string.Equals(Path.GetExtension(f), extension, StringComparison.OrdinalIgnoreCase)).ToList();

    private static Dictionary<string, Tensor> ReadSampleFolder(string folder, ValueInfo[] inputs)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var paths = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            string pb = Path.Combine(folder, input.Name + ".pb"), npy = Path.Combine(folder, input.Name + ".npy");
            bool hasPb = File.Exists(pb), hasNpy = File.Exists(npy);
            if (hasPb && hasNpy)
                throw new InvalidDataException($"{folder}: has both {input.Name}.pb and {input.Name}.npy; keep one.");
            if (!hasPb && !hasNpy)
                throw new InvalidDataException($"{folder}: has no file for input '{input.Name}' (looked for {input.Name}.pb and {input.Name}.npy). Every sample folder needs one file per model input, named after it.");
            paths[input.Name] = hasPb ? pb : npy;
            result[input.Name] = hasPb ? ReadTensorProto(pb, input) : NumpyFiles.ReadNpy(npy);
        }
        return Checked(result, inputs, name => paths[name]);
    }

    private static Tensor ReadTensorProto(string path, ValueInfo input)
    {
        try
        {
            return InputData.Read(Path.GetDirectoryName(path)!, [input])[input.Name];
        }
        catch (Exception e) when (e is InvalidModelException or NotSupportedException or IOException or UnauthorizedAccessException)
        {
            string message = e.Message.StartsWith(path, StringComparison.Ordinal) ? e.Message : $"{path}: {e.Message}";
            throw new InvalidDataException($"{message} Write it with onnx.numpy_helper.from_array(array, name).SerializeToString().", e);
        }
    }

    /// <summary>Checks each input's element type and shape against the declaration; <paramref name="pathOf"/> names its file.</summary>
    private static Dictionary<string, Tensor> Checked(Dictionary<string, Tensor> sample, ValueInfo[] inputs, Func<string, string> pathOf)
    {
        foreach (var input in inputs)
        {
            var tensor = sample[input.Name];
            if (input.ElementType != TensorElementType.Undefined && tensor.ElementType != input.ElementType)
                throw new InvalidDataException(
                    $"{pathOf(input.Name)}: input '{input.Name}' must be {input.ElementType.DisplayName()}, but the file holds {tensor.ElementType.DisplayName()}. Convert it (numpy: a.astype(numpy.{NumpyName(input.ElementType)})).");
            if (input.Shape is { } shape)
            {
                bool fits = shape.Count == tensor.Rank;
                for (int d = 0; fits && d < shape.Count; d++)
                    fits = shape[d].Value is not { } size || size <= 0 || size == tensor.Shape[d];
                if (!fits)
                    throw new InvalidDataException(
                        $"{pathOf(input.Name)}: input '{input.Name}' must have shape [{string.Join(", ", shape)}] (as the model declares), but the file holds {NumpyFiles.Format(tensor.Shape.ToArray())}.");
            }
        }
        return sample;
    }

    private static string NumpyName(TensorElementType type) => type switch
    {
        TensorElementType.Float32 => "float32",
        TensorElementType.Float64 => "float64",
        TensorElementType.Float16 => "float16",
        TensorElementType.Int64 => "int64",
        TensorElementType.Int32 => "int32",
        TensorElementType.Int8 => "int8",
        TensorElementType.UInt8 => "uint8",
        TensorElementType.Bool => "bool_",
        var other => other.DisplayName(),
    };
}
