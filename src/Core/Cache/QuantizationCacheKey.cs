using System.Security.Cryptography;
using System.Text;

namespace Quantize.Core.Cache;

/// <summary>
/// The content address of a quantization: SHA-256 over everything the output depends on (the model's bytes, the
/// calibration files' names and bytes, the canonical options and the tool's version), so that equal inputs find the
/// same entry from any project, checkout or machine.
/// </summary>
public static class QuantizationCacheKey
{
    // Bump when the key's layout changes, so old entries are never read with a new meaning.
    private const string Format = "Quantize.Build cache key v1";

    /// <summary>Computes the key (lowercase hex).</summary>
    /// <param name="modelPath">The float model file.</param>
    /// <param name="calibrationFiles">Calibration files as (name relative to the data folder, path); hashed in ordinal order of the names.</param>
    /// <param name="canonicalOptions">The options in a canonical text form (e.g. <see cref="Quantization.Quantizer.OptionsJson"/>).</param>
    /// <param name="toolVersion">The quantizer's version: a new quantizer never reuses an old result.</param>
    public static string Compute(string modelPath, IEnumerable<(string Name, string Path)> calibrationFiles, string canonicalOptions, string toolVersion)
    {
        ArgumentNullException.ThrowIfNull(modelPath);
        ArgumentNullException.ThrowIfNull(calibrationFiles);
        ArgumentNullException.ThrowIfNull(canonicalOptions);
        ArgumentNullException.ThrowIfNull(toolVersion);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        AddText(hash, Format);
        AddText(hash, toolVersion);
        AddText(hash, canonicalOptions);
        AddFile(hash, modelPath);
        var files = calibrationFiles.OrderBy(f => Normalize(f.Name), StringComparer.Ordinal).ToList();
        AddNumber(hash, files.Count);
        foreach (var (name, path) in files)
        {
            AddText(hash, Normalize(name));
            AddFile(hash, path);
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>The files under <paramref name="folder"/> (recursively, hidden ones skipped) with their names relative to it.</summary>
    public static IReadOnlyList<(string Name, string Path)> FolderFiles(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) return [];
        return Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Select(path => (Name: Normalize(Path.GetRelativePath(folder, path)), Path: path))
            .Where(f => !f.Name.Split('/').Any(part => part.StartsWith('.')))
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
    }

    // The same folder gives the same key on Windows and Linux.
    private static string Normalize(string name) => name.Replace('\\', '/');

    // Every field is length-prefixed, so no two different inputs concatenate to the same bytes.
    private static void AddText(IncrementalHash hash, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        AddNumber(hash, bytes.Length);
        hash.AppendData(bytes);
    }

    private static void AddNumber(IncrementalHash hash, long value)
    {
        Span<byte> buffer = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(buffer, value);
        hash.AppendData(buffer);
    }

    private static void AddFile(IncrementalHash hash, string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        AddNumber(hash, stream.Length);
        byte[] buffer = new byte[1 << 16];
        int read;
        while ((read = stream.Read(buffer)) > 0) hash.AppendData(buffer, 0, read);
    }
}
