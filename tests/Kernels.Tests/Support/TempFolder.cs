using System.Security.Cryptography;

namespace Quantize.Kernels.Tests.Support;

/// <summary>A fresh folder under the system temp folder, deleted with everything in it on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = Directory.CreateTempSubdirectory("quantize-tests-").FullName;
    }

    public string Path { get; }

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    /// <summary>Every file below the folder, relative to it, sorted (symbolic links listed, not followed).</summary>
    public string[] Files() => Directory.GetFiles(Path, "*", SearchOption.AllDirectories)
        .Select(f => System.IO.Path.GetRelativePath(Path, f)).Order(StringComparer.Ordinal).ToArray();

    /// <summary>SHA-256 of every file below <paramref name="folder"/>, by relative path.</summary>
    public static IReadOnlyDictionary<string, string> Hashes(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToDictionary(
            f => System.IO.Path.GetRelativePath(folder, f),
            f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // Best effort: the system cleans its temp folder.
        }
    }
}
