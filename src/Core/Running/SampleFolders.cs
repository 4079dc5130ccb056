using Quantize.Core.Quantization;
using Quantize.Kernels.Runtime;

namespace Quantize.Core.Running;

/// <summary>Model input samples from a folder: one sub-folder per sample, or the folder itself as one sample.</summary>
public static class SampleFolders
{
    /// <summary>
    /// The samples under <paramref name="folder"/>, read one at a time in ordinal order of the folder names: each
    /// sub-folder holds one tensor file per input (see <see cref="InputData.Read"/>); a folder without sub-folders is one sample.
    /// </summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    public static SampleSource Open(string folder, IReadOnlyList<ValueInfo> inputs)
    {
        if (!Directory.Exists(folder)) throw new DirectoryNotFoundException($"{folder}: the data folder does not exist.");
        var samples = Directory.GetDirectories(folder).Order(StringComparer.Ordinal).ToArray();
        if (samples.Length == 0) samples = [folder];
        return () => samples.Select(s => (IReadOnlyDictionary<string, Tensor>)InputData.Read(s, inputs));
    }
}
