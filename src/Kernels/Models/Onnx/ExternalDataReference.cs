using System.Globalization;

namespace Quantize.Kernels.Models.Onnx;

/// <summary>
/// Where an ONNX tensor's bytes live outside the model file: the <c>external_data</c> keys
/// <c>location</c>, <c>offset</c> and <c>length</c>, with the location resolved inside the model's folder.
/// </summary>
public sealed class ExternalDataReference
{
    private ExternalDataReference(string location, string fullPath, long offset, long? length)
    {
        Location = location;
        FullPath = fullPath;
        Offset = offset;
        Length = length;
    }

    /// <summary>The location as written in the model, relative to its folder.</summary>
    public string Location { get; }

    /// <summary>The resolved file path, known to lie inside the model's folder.</summary>
    public string FullPath { get; }

    /// <summary>Byte offset of the data in the file.</summary>
    public long Offset { get; }

    /// <summary>Byte count of the data, when the model states it.</summary>
    public long? Length { get; }

    /// <summary>True if the tensor keeps its data in an external file.</summary>
    public static bool IsExternal(TensorProto tensor) =>
        tensor.HasDataLocation && tensor.DataLocation == TensorProto.Types.DataLocation.External;

    /// <summary>
    /// Parses a tensor's external-data keys and resolves the file inside <paramref name="baseDirectory"/>.
    /// Absolute locations, <c>..</c> segments and symbolic links that lead out of the folder are refused.
    /// </summary>
    /// <exception cref="InvalidModelException">The keys are malformed or the location escapes the folder.</exception>
    public static ExternalDataReference Resolve(TensorProto tensor, string? baseDirectory, string modelSource)
    {
        string? location = null;
        long offset = 0;
        long? length = null;
        foreach (var entry in tensor.ExternalData)
        {
            switch (entry.Key)
            {
                case "location": location = entry.Value; break;
                case "offset": offset = ParseSize(entry.Value, "offset", tensor, modelSource); break;
                case "length": length = ParseSize(entry.Value, "length", tensor, modelSource); break;
            }
        }

        string what = $"tensor '{tensor.Name}'";
        if (string.IsNullOrEmpty(location))
            throw new InvalidModelException(modelSource, $"{what} is marked as external data but has no 'location'. Re-export the model with its external data.");
        if (baseDirectory is null)
            throw new InvalidModelException(modelSource, $"{what} keeps its data in external file '{location}', but the model was loaded without a folder. Load it from its path, or set ModelLoadOptions.BaseDirectory.");

        string fullPath = ContainedPath.Resolve(baseDirectory, location, modelSource, what);
        return new ExternalDataReference(location, fullPath, offset, length);
    }

    private static long ParseSize(string text, string key, TensorProto tensor, string modelSource)
    {
        if (!long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long value))
            throw new InvalidModelException(modelSource, $"tensor '{tensor.Name}' has external-data {key} '{text}', which is not a non-negative integer.");
        return value;
    }
}
